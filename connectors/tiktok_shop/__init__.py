"""The TikTok Shop channel (Open API 202309+): signed requests, inventory, orders and webhooks."""
