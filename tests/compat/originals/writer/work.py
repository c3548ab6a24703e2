import os

with open("report.txt", "w") as handle:
    handle.write("written by the writer")
print("writer wrote report.txt in", os.getcwd(), "TITAN_DAG_DIR matches:", os.getcwd() == os.environ["TITAN_DAG_DIR"])
