from hopsplane.cli.main import main

main()
