import helper
from titan_sdk import TitanClient

with open("report.txt", "w") as handle:
    handle.write(helper.message())
client = TitanClient()
client.publish_artifact("compat/report", "report.txt")
print("published", helper.message())
