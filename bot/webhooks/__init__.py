"""The GitHub webhook endpoint (bot.webhooks.app) and its routers, one per concern."""
