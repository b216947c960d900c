from mlpulse.cli import main

main()
