from mmkgc_pyg.cli.plot import main

if __name__ == "__main__":
    main()
