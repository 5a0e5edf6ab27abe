"""`python -m sms_service.cli` runs the same command line as `sms-service`."""

from sms_service.cli.main import main

main()
