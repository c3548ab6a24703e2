"""A service plus a job that calls it: the model server runs as a SERVICE; `predict` waits until its port
accepts connections, calls it, and ends; then the service is stopped for good.

SERVICE_PORT picks the port (default: a free one).
"""

import os
import socket

from titan_sdk import TitanClient, TitanJob


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


here = os.path.dirname(os.path.abspath(__file__))
port = int(os.environ.get("SERVICE_PORT") or free_port())
client = TitanClient()
server = TitanJob("model_server", os.path.join(here, "model_server.py"), job_type="SERVICE", port=port,
                  args=str(port))
caller = TitanJob("predict", os.path.join(here, "predict.py"), args=str(port), parents=["model_server"])
client.submit_dag("service_pipeline", [server, caller])

state = client.wait("predict", timeout=60)
print(f"predict: {state}")
print(client.fetch_logs("predict"), end="")
info = client.job_info("model_server")
print(f"model_server: {info['state']} on port {port}, up: {info['service_up']}")
print(f"model_server after stop_service: {client.stop_service('model_server')}")
raise SystemExit(0 if state == "COMPLETED" else 1)
