"""Builds the configured Lightning logger; W&B never blocks.

Without an API key (``WANDB_API_KEY`` or a ``wandb login`` entry in ~/.netrc) and with no
``WANDB_MODE`` set, W&B runs offline: it writes a real run under ``<run dir>/wandb`` that
``wandb sync`` uploads later and ``wandb leet`` browses in a terminal. An online run whose
start fails falls back to offline, and says so. W&B prints nothing on the terminal (the run summary names
its folder) unless ``hydra.verbose=rnnlab`` (or true); its own log is ``<run dir>/wandb/<run>/logs/``.
"""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from urllib.parse import urlparse

from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from rnnlab.training.console import verbose

log = logging.getLogger(__name__)
WANDB_TARGET = "lightning.pytorch.loggers.WandbLogger"


def wandb_api_key_available() -> bool:
    """True when W&B could authenticate without prompting."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def _is_wandb(cfg: DictConfig) -> bool:
    target = cfg.get("_target_")
    return target is not None and get_class(target).__name__ == "WandbLogger"


def _quiet_wandb(offline: bool) -> None:
    """W&B's terminal lines (its banner, the 25-line history and summary block at the end, and the
    ``anonymous`` deprecation Lightning's WandbLogger triggers) off, process-wide, unless
    ``hydra.verbose=rnnlab`` (or true).
    wandb.setup's settings apply to the runs started after it; they include the mode, or the online
    default in them wins over the ``offline=True`` that WandbLogger passes later."""
    import wandb

    if not verbose("rnnlab"):  # not "wandb": wandb sets its own logger to DEBUG for its debug.log
        wandb.setup(settings=wandb.Settings(silent=True, **({"mode": "offline"} if offline else {})))


def wandb_mode() -> str | None:
    """``WANDB_MODE`` as W&B should see it: set but empty (as shell scripts often leave it) means unset, and is
    removed from the environment, where W&B would reject it."""
    if os.environ.get("WANDB_MODE") == "":
        del os.environ["WANDB_MODE"]
    return os.environ.get("WANDB_MODE")


def build_logger(cfg: DictConfig | None, output_dir: Path, run_name: str, group: str | None):
    """The logger for this run, or False (Lightning's "no logger") when ``logger=none``."""
    if cfg is None:
        return False
    if not _is_wandb(cfg):
        return instantiate(cfg, save_dir=str(output_dir))
    kwargs = OmegaConf.to_container(cfg, resolve=True)
    kwargs["name"] = kwargs.get("name") or run_name
    kwargs["group"] = kwargs.get("group") or group
    kwargs.setdefault("save_dir", str(output_dir))
    mode = wandb_mode()
    if mode is None and not wandb_api_key_available():
        log.debug("W&B: no API key found, running offline in %s/wandb (upload later with `wandb sync`, "
                  "browse with `wandb leet`)", output_dir)
        mode = "offline"
    if mode in ("offline", "dryrun"):
        kwargs["offline"] = True
    _quiet_wandb(offline=kwargs.get("offline", False))
    logger = instantiate(kwargs)
    if mode not in ("offline", "dryrun", "disabled"):
        os.environ.setdefault("WANDB_INIT_TIMEOUT", "30")  # wandb waits 90 s by default before giving up
        try:
            logger.experiment  # noqa: B018 - starts the run now, so a network or login failure shows here
        except Exception as error:  # noqa: BLE001 - any failure to start falls back to offline
            import wandb

            log.warning("W&B: could not start an online run (%s); falling back to offline in %s/wandb",
                        str(error).splitlines()[0][:200], output_dir)
            wandb.teardown()  # forget the online session, or the next init tries it again
            os.environ["WANDB_MODE"] = "offline"
            kwargs["offline"] = True
            _quiet_wandb(offline=True)
            logger = instantiate(kwargs)
    return logger


def finish_wandb() -> None:
    """Close the current W&B run, if any, so the next run of a sweep starts a new one."""
    import wandb

    if wandb.run is not None:
        wandb.finish()
