"""DINO, iBOT and KoLeo pretraining losses and the Gram-anchoring regulariser, one module each."""

from .centering import TeacherCentering
from .dino import DINOLoss
from .gram import GramLoss
from .ibot import iBOTPatchLoss
from .koleo import KoLeoLoss

__all__ = ["DINOLoss", "GramLoss", "KoLeoLoss", "TeacherCentering", "iBOTPatchLoss"]
