"""The original's service pattern: deploy (DEPLOY_PAYLOAD + port), poll until COMPLETED, use it, stop it."""
import socket
import sys
import time
import urllib.request

from titan_sdk import TitanClient, TitanJob

with socket.socket() as probe:           # a port for the service, baked into its script as users did
    probe.bind(("127.0.0.1", 0))
    PORT = probe.getsockname()[1]
with open("compat_server.py", "w") as handle:
    handle.write(f"""
import http.server

class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"hello from the deployed service")

    def log_message(self, *args):
        pass

http.server.HTTPServer(("127.0.0.1", {PORT}), Hello).serve_forever()
""")

client = TitanClient()
service = TitanJob(job_id="compat_api", filename="compat_server.py", job_type="DEPLOY_PAYLOAD", port=PORT)
client.submit_job(service)
deadline = time.time() + 30
while client.get_job_status(service.id) != "COMPLETED":
    if time.time() > deadline or client.get_job_status(service.id) in ("FAILED", "CANCELLED"):
        sys.exit(f"the service was not deployed: {client.job_info(service.id)}")
    time.sleep(0.2)
print("deployed:", client.get_job_status(service.id), "/ job_info:", client.job_info(service.id)["state"])
print("answer:", urllib.request.urlopen(f"http://127.0.0.1:{PORT}/", timeout=10).read().decode())
print("stop:", client.stop_service(service.id))
deadline = time.time() + 15          # the worker kills it moments after the master orders it
while time.time() < deadline:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{PORT}/", timeout=1)
        time.sleep(0.2)
    except OSError:
        break
else:
    sys.exit("the service still answers 15 s after stop_service")
print("after stop:", client.get_job_status(service.id), client.job_info(service.id)["reason"])
print("SERVICE OK")
