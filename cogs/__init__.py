"""discord.py cogs. Each module is an extension with ``async def setup(bot)``; ``bot.py`` loads them all."""
