"""A tiny model server: GET /predict?x=3 answers {"x": 3, "y": 7} (y = 2x + 1). Listens on 127.0.0.1:PORT."""

import http.server
import json
import sys
import urllib.parse


class Predict(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        query = urllib.parse.parse_qs(url.query)
        if url.path != "/predict" or "x" not in query:
            self.send_error(404, "try /predict?x=3")
            return
        x = float(query["x"][0])
        body = json.dumps({"x": x, "y": 2 * x + 1}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        print("served", format % args, flush=True)


port = int(sys.argv[1])
print(f"model server listening on 127.0.0.1:{port}", flush=True)
http.server.HTTPServer(("127.0.0.1", port), Predict).serve_forever()
