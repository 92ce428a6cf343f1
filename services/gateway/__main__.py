from services.gateway.entrypoint import main

main()
