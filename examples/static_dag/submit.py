"""Mode 1, a static pipeline: extract on any worker, then train on a GPU worker (the seed's first example)."""

from titan_sdk import TitanClient, TitanJob

client = TitanClient()  # TITAN_HOST / TITAN_PORT, else localhost:9090

# 1. Define the Root Task
task_a = TitanJob(
    job_id="extract_data",
    filename="etl/extract.py",
    priority=5
)
# 2. Define a Dependent Task
task_b = TitanJob(
    job_id="train_model",
    filename="ml/train.py",
    requirement="GPU",
    parents=["extract_data"]  # <--- Defines the dependency
)
# 3. Submit them as a unified DAG
client.submit_dag("nightly_pipeline", [task_a, task_b])
print("DAG Submitted Successfully!")

final = client.wait(["extract_data", "train_model"], timeout=120)
print(final)
raise SystemExit(0 if set(final.values()) == {"COMPLETED"} else 1)
