from mmkgc_pyg.cli.predict import main

if __name__ == "__main__":
    main()
