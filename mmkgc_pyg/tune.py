from mmkgc_pyg.cli.tune import main

if __name__ == "__main__":
    main()
