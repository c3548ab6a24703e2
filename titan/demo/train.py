import os

print(f"training the model on {os.environ['TITAN_WORKER_ID']}, the only worker with a GPU")
print(f"attempt {os.environ['TITAN_ATTEMPT']} of job {os.environ['TITAN_JOB_ID']} in DAG {os.environ['TITAN_DAG_ID']}")
