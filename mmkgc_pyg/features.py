from mmkgc_pyg.cli.features import main

if __name__ == "__main__":
    main()
