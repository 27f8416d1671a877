from flowdock_runtime.main import main

main()
