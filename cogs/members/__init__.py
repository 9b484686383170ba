"""What members and operators expect of a public bot: ``/help``, ``/limits``, ``/forget`` (``help``,
``forget``), and the clean-up that keeps nothing longer than promised (``upkeep``).

One :class:`t2f.serve.forget.Forgetting` serves ``/forget``, ``/faceadmin forget`` and the clean-up.
"""

from __future__ import annotations

from cogs.base import FaceBot
from cogs.members.forget import ForgetButton, ForgetCog
from cogs.members.help import HelpCog
from cogs.members.upkeep import UpkeepCog
from t2f.files.download import uploads_folder
from t2f.serve.forget import Forgetting

__all__ = ["ForgetButton", "ForgetCog", "HelpCog", "UpkeepCog", "setup"]


async def setup(bot: FaceBot) -> None:
    settings = bot.settings
    forgetting = Forgetting(
        store=bot.store,
        service=bot.service,
        pages=bot.pages,
        uploads=uploads_folder(settings.output_dir),
        retention_s=settings.retention_days * 86400.0,
        saved=bot.saved,
    )
    await bot.add_cog(HelpCog(bot))
    await bot.add_cog(ForgetCog(bot, forgetting))
    await bot.add_cog(UpkeepCog(bot, forgetting))
    bot.add_dynamic_items(ForgetButton)
