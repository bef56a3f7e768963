"""Run the gateway: ``python -m services.gateway`` (settings from the environment, services/common/settings.py)."""
import uvicorn

from services.common import logs, settings
from services.gateway.app import create_app


def main() -> None:
    config = settings.gateway_config()
    logs.configure("gateway", config["LOG_LEVEL"])
    # log_config=None keeps Leadflow's JSON log lines instead of uvicorn's own format.
    uvicorn.run(create_app(config), host=config["HTTP_BIND_HOST"], port=config["GATEWAY_HTTP_PORT"],
                log_config=None, access_log=False, proxy_headers=False, server_header=False)


if __name__ == "__main__":
    main()
