from mmkgc_pyg.cli.evaluate import main

if __name__ == "__main__":
    main()
