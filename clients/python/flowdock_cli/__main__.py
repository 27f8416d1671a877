from flowdock_cli.main import main

main()
