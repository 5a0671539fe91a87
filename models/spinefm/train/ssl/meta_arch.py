"""Student/teacher self-distillation architecture (DINOv2 ``SSLMetaArch``, DINOv3 Gram phase).

The student (backbone + DINO head + iBOT head) is trained by gradient; the
teacher is an EMA of the student and only sees unmasked global crops; the
Gram teacher is a frozen snapshot of the teacher taken when phase 2 starts.
One ``compute_losses`` call does one training step's forward passes.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ...vit import VisionTransformer, ViTConfig
from .config import SSLConfig
from .heads import DINOHead
from .losses import DINOLoss, GramLoss, KoLeoLoss, iBOTPatchLoss


def _head(cfg: SSLConfig, dim: int) -> DINOHead:
    return DINOHead(dim, cfg.head_prototypes, cfg.head_hidden, cfg.head_bottleneck, cfg.head_layers)


def _freeze(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


class SSLMetaArch(nn.Module):
    def __init__(self, cfg: SSLConfig, backbone: VisionTransformer | None = None):
        super().__init__()
        self.cfg = cfg
        if backbone is None:
            backbone = VisionTransformer(
                ViTConfig(size=cfg.vit_size, img_size=cfg.img_size, patch_size=cfg.patch_size,
                          num_registers=cfg.num_registers, drop_path=cfg.drop_path)
            )
        dim = backbone.embed_dim
        student = nn.ModuleDict({"backbone": backbone, "dino_head": _head(cfg, dim)})
        if cfg.ibot_separate_head:
            student["ibot_head"] = _head(cfg, dim)
        self.student = student
        self.teacher = _freeze(copy.deepcopy(student))
        for block in self.teacher["backbone"].blocks:
            block.drop_path = 0.0
        self.gram_teacher: VisionTransformer | None = None
        self.dino_loss = DINOLoss(cfg.head_prototypes, cfg.student_temp, cfg.center_momentum, cfg.centering)
        self.ibot_loss = iBOTPatchLoss(cfg.head_prototypes, cfg.student_temp, cfg.center_momentum, cfg.centering)
        self.koleo_loss = KoLeoLoss()
        self.gram_loss = GramLoss()

    def train(self, mode: bool = True) -> "SSLMetaArch":
        super().train(mode)
        self.teacher.eval()  # the teacher never uses drop-path
        if self.gram_teacher is not None:
            self.gram_teacher.eval()
        return self

    @staticmethod
    def _ibot_head(part: nn.ModuleDict) -> DINOHead:
        return part["ibot_head"] if "ibot_head" in part else part["dino_head"]

    # -- Gram anchoring ----------------------------------------------------
    def start_gram_phase(self) -> None:
        """Snapshot the current teacher backbone as the frozen Gram teacher."""
        self.gram_teacher = _freeze(copy.deepcopy(self.teacher["backbone"]))

    @torch.no_grad()
    def gram_teacher_patches(self, images: torch.Tensor, n_patches: int) -> torch.Tensor:
        """Gram-teacher patch features on the student's patch grid.

        With ``gram_teacher_scale`` > 1 the Gram teacher sees the crops upsampled
        and its feature map is resized back (DINOv3's high-resolution Gram
        target: smoother, more detailed patch similarities)."""
        scale = self.cfg.gram_teacher_scale
        if scale == 1.0:
            return self.gram_teacher.forward_features(images)["patches"]
        side = int(round(n_patches ** 0.5))
        big = torch.nn.functional.interpolate(images, scale_factor=scale, mode="bicubic", align_corners=False)
        p = self.gram_teacher.forward_features(big)["patches"]
        b, n, d = p.shape
        s = int(round(n ** 0.5))
        p = p.transpose(1, 2).reshape(b, d, s, s)
        p = torch.nn.functional.interpolate(p.float(), size=(side, side), mode="bicubic", align_corners=False, antialias=True)
        return p.flatten(2).transpose(1, 2)

    @torch.no_grad()
    def refresh_gram_teacher(self) -> None:
        self.gram_teacher.load_state_dict(self.teacher["backbone"].state_dict())

    # -- EMA ------------------------------------------------------------------
    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        """teacher <- m * teacher + (1 - m) * student, for backbone and heads."""
        t = [p for p in self.teacher.parameters()]
        s = [p.detach() for p in self.student.parameters()]
        torch._foreach_mul_(t, momentum)
        torch._foreach_add_(t, s, alpha=1.0 - momentum)

    # -- one step -------------------------------------------------------------
    def compute_losses(
        self,
        global_crops: torch.Tensor,
        local_crops: torch.Tensor,
        masks: torch.Tensor,
        teacher_temp: float,
        use_gram: bool = False,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """``global_crops`` (2B, 3, G, G) crop-major, ``local_crops`` (nL*B, 3, L, L),
        ``masks`` (2B, N) bool for the student's global crops. Updates the centres."""
        cfg = self.cfg
        n_global = 2
        n_local = local_crops.shape[0] // max(1, global_crops.shape[0] // n_global)

        with torch.no_grad():
            t = self.teacher["backbone"].forward_features(global_crops)
            t_cls = self.teacher["dino_head"](t["cls"])
            t_cls_probs = self.dino_loss.teacher_targets(t_cls, teacher_temp).chunk(n_global)
            t_patch = self._ibot_head(self.teacher)(t["patches"][masks])
            t_patch_probs = self.ibot_loss.teacher_targets(t_patch, teacher_temp)
            self.dino_loss.update_center(t_cls)
            self.ibot_loss.update_center(t_patch)

        s_g = self.student["backbone"].forward_features(global_crops, masks=masks)
        cls = [s_g["cls"]]
        if n_local > 0:
            cls.append(self.student["backbone"].forward_features(local_crops)["cls"])
        s_logits = self.student["dino_head"](torch.cat(cls))
        s_list = list(s_logits.chunk(n_global + n_local))

        dino = self.dino_loss(s_list, list(t_cls_probs))
        ibot = self.ibot_loss(self._ibot_head(self.student)(s_g["patches"][masks]), t_patch_probs, masks)
        koleo = sum(self.koleo_loss(c) for c in s_g["cls"].chunk(n_global))
        total = cfg.dino_weight * dino + cfg.ibot_weight * ibot + cfg.koleo_weight * koleo
        logs = {"dino": float(dino.detach()), "ibot": float(ibot.detach()), "koleo": float(koleo.detach())}
        if use_gram:
            if self.gram_teacher is None:
                raise RuntimeError("Gram phase requested before start_gram_phase()")
            with torch.no_grad():
                g_patches = self.gram_teacher_patches(global_crops, s_g["patches"].shape[1])
            gram = self.gram_loss(s_g["patches"], g_patches)
            total = total + cfg.gram_weight * gram
            logs["gram"] = float(gram.detach())
        logs["loss"] = float(total.detach())
        return total, logs

    # -- optimiser groups -----------------------------------------------------
    def param_groups(self) -> list[dict]:
        """AdamW groups: no weight decay on biases/norms/LayerScale/tokens; layer-wise lr decay;
        lower lr for the patch embedding; prototypes flagged so they can be frozen early on."""
        cfg = self.cfg
        depth = len(self.student["backbone"].blocks)
        groups: dict[tuple, dict] = {}
        for name, p in self.student.named_parameters():
            if not p.requires_grad:
                continue
            no_wd = p.ndim <= 1 or name.endswith(".bias") or "token" in name or "pos_embed" in name or ".gamma" in name
            if name.startswith("backbone."):
                rest = name[len("backbone."):]
                if rest.startswith("blocks."):
                    layer = int(rest.split(".")[1]) + 1
                elif rest.startswith(("patch_embed", "cls_token", "register_tokens", "pos_embed", "mask_token")):
                    layer = 0
                else:
                    layer = depth + 1
            else:
                layer = depth + 1
            lr_mult = cfg.layerwise_decay ** (depth + 1 - layer)
            if "patch_embed" in name:
                lr_mult *= cfg.patch_embed_lr_mult
            last = name.endswith("last_layer")
            key = (round(lr_mult, 8), 0.0 if no_wd else 1.0, last)
            g = groups.setdefault(key, {"params": [], "lr_mult": key[0], "wd_mult": key[1], "is_last_layer": last})
            g["params"].append(p)
        return list(groups.values())
