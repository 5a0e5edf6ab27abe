"""``python -m sms_service.carrier_sim``: the same command as ``sms-service carrier-sim``."""

from .cli import carrier_sim_command

if __name__ == "__main__":
    carrier_sim_command(prog_name="python -m sms_service.carrier_sim")
