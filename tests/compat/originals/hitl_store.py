"""Deciding HITL gates the original's way: APPROVED / REJECTED under titan:hitl:status:<gate id>."""
import sys
import time

from titan_sdk import TitanClient, TitanJob

client = TitanClient()
ENDED = ("COMPLETED", "FAILED", "CANCELLED")


def wait_for(job_id, states):
    deadline = time.time() + 30
    while client.get_job_status(job_id) not in states:
        if time.time() > deadline:
            sys.exit(f"{job_id} stayed {client.get_job_status(job_id)}")
        time.sleep(0.1)
    return client.get_job_status(job_id)


def gated_dag(name, first_script="steps/step.py"):
    first = TitanJob(job_id=f"{name}_prep", filename=first_script, hitl_message="Check the data")
    second = TitanJob(job_id=f"{name}_train", filename="steps/step.py", parents=[first.id])
    client.submit_dag(name, [first, second])
    return f"hitl-gate-{first.id}", second.id


gate, child = gated_dag("compat_ok")
wait_for(gate, ("WAITING_APPROVAL",))
client.store_put(f"titan:hitl:status:{gate}", "APPROVED")
print("approved child:", wait_for(child, ENDED))

gate, child = gated_dag("compat_no")
wait_for(gate, ("WAITING_APPROVAL",))
client.store_put(f"titan:hitl:status:{gate}", "REJECTED")
print("rejected child:", wait_for(child, ENDED), "/", client.job_info(child)["reason"])

gate, child = gated_dag("compat_early", "steps/slow_step.py")
client.store_put(f"titan:hitl:status:{gate}", "APPROVED")      # before the gate has opened
print("early child:", wait_for(child, ENDED))

gate, child = gated_dag("compat_early", "steps/slow_step.py")    # again: the old decision is cleared
print("key after resubmit:", client.store_get(f"titan:hitl:status:{gate}"))
print("gate after resubmit:", wait_for(gate, ("WAITING_APPROVAL",) + ENDED))
client.approve(f"DAG-{gate}")
print("approved with DAG- prefix:", wait_for(child, ENDED))
