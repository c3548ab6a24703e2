from titan_sdk import TitanClient

client = TitanClient()
print(f"merged {client.store_get('demo/shards')} shards, checksum {client.store_get('demo/checksum')}")
