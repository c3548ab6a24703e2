from titan_sdk import TitanClient

print(f"deploying the model with validation loss {TitanClient().store_get('hitl_release/loss')}")
