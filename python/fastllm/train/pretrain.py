"""The pre-training loop behind ``fastllm train`` (single process or ``torchrun``).

Per optimizer step: ``grad_accum`` micro-batches (DDP gradient sync only on the last),
gradient clipping, AdamW, warmup+cosine learning rate. bf16 autocast on GPU, where the
model uses the fastllm kernels (flash attention, fused linear cross-entropy). Periodic
validation, atomic checkpoints with exact resume, a JSONL log and a progress bar.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import torch

from fastllm.files import hold_directory

from .checkpoint import CHECKPOINT_FILE, check_model_config, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import TrainConfig
from .data import BatchLoader, read_meta
from .metrics import JsonlLog, flops_per_token, mfu, peak_flops
from .optim import WarmupCosine, check_finite, make_adamw, optimizer_step
from .runtime import (DistContext, all_reduce_mean, autocast, barrier, init_distributed, seed_everything, shutdown,
                      wrap_model)

LOG_FILE = "log.jsonl"
MODEL_DIR = "model"


@torch.no_grad()
def evaluate(model, loader: BatchLoader, batches: int, autocast, ctx: DistContext) -> float:
    """Mean loss over the first ``batches`` batches of ``loader`` (the same ones every time)."""
    was_training = model.training
    model.eval()
    loader.reset()
    total = torch.zeros((), device=ctx.device)
    for _ in range(batches):
        x, y = loader.next_batch()
        with autocast:
            loss = model(x, y).loss
        total += loss.float()
    model.train(was_training)
    return float(all_reduce_mean(total / batches, ctx))


class Trainer:
    """One pre-training run; :meth:`run` trains to ``cfg.max_steps`` and returns a summary."""

    def __init__(self, cfg: TrainConfig, ctx: DistContext | None = None, tokenizer=None):
        from fastllm.model import GPT
        from fastllm.tokenizer import open_tokenizer


        self.cfg = cfg
        self.ctx = ctx or init_distributed(cfg.device)
        self.out = Path(cfg.out)
        meta = read_meta(cfg.data)
        self.tokenizer = tokenizer or open_tokenizer(Path(cfg.data) / meta["tokenizer"])
        self.model_config = cfg.gpt_config(meta["vocab_size"])
        seed_everything(cfg.seed)  # identical initial weights on every rank
        self.model = GPT(self.model_config).to(self.ctx.device)
        self.ddp_model = wrap_model(self.model, self.ctx)
        self.optimizer = make_adamw(self.model, cfg.lr, cfg.weight_decay, (cfg.beta1, cfg.beta2))
        self.schedule = WarmupCosine(cfg.lr, cfg.min_lr, min(cfg.warmup_steps, cfg.max_steps), cfg.max_steps)
        rank, world = self.ctx.rank, self.ctx.world_size
        self.train_loader = BatchLoader(cfg.data, "train", cfg.batch_size, cfg.seq_len, rank, world, self.ctx.device,
                                        shuffle=True, seed=cfg.seed)
        self.val_loader = None
        if meta["splits"]["val"]["tokens"] > 0:
            self.val_loader = BatchLoader(cfg.data, "val", cfg.batch_size, cfg.seq_len, rank, world, self.ctx.device)
        self.autocast = autocast(self.ctx.device, cfg.dtype)
        self.log = JsonlLog(self.out / LOG_FILE, enabled=self.ctx.is_main)
        self.step = 0
        self.tokens_seen = 0
        seed_everything(cfg.seed + rank)  # per-rank dropout noise
        self.flops_per_token = flops_per_token(
            self.model.num_params(non_embedding=False), self.model_config.n_layer,
            self.model_config.n_embd, cfg.seq_len)
        self.peak = peak_flops(self.ctx.device)

    # -- checkpoints ----------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.out / CHECKPOINT_FILE

    def save(self) -> None:
        rngs = [rng_state()]
        if self.ctx.distributed:
            import torch.distributed as dist

            rngs = [None] * self.ctx.world_size
            dist.all_gather_object(rngs, rng_state())
        if self.ctx.is_main:
            save_checkpoint(self.checkpoint_path, {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict(),
                "step": self.step,
                "tokens_seen": self.tokens_seen,
                "rng": rngs,
                "data": self.train_loader.state_dict(),
                "model_config": self.model_config.to_dict(),
                "train_config": self.cfg.to_dict(),
                "world_size": self.ctx.world_size,
            })
        barrier(self.ctx)

    def resume(self, path: Path | None = None) -> bool:
        """Loads the checkpoint (``OUT/checkpoint.pt`` by default); False when there is none."""
        path = Path(path) if path else self.checkpoint_path
        if not path.is_file():
            return False
        state = load_checkpoint(path, map_location="cpu")  # RNG states must stay on the CPU
        check_model_config(state["model_config"], self.model_config.to_dict(), path)
        if state.get("world_size", 1) != self.ctx.world_size:
            raise ValueError(
                f"{path} was written by {state.get('world_size')} processes, this run has "
                f"{self.ctx.world_size}: resume with the same number of processes"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.train_loader.load_state_dict(state["data"])
        self.step = int(state["step"])
        self.tokens_seen = int(state["tokens_seen"])
        set_rng_state(state["rng"][self.ctx.rank])
        return True

    # -- the loop ---------------------------------------------------------------------
    def train_step(self) -> tuple[float, float]:
        """One optimizer step; returns (mean loss across ranks, grad norm)."""
        cfg = self.cfg
        loss_sum = torch.zeros((), device=self.ctx.device)
        for micro in range(cfg.grad_accum):
            x, y = self.train_loader.next_batch()
            last = micro == cfg.grad_accum - 1
            sync = contextlib.nullcontext() if last or not self.ctx.distributed else self.ddp_model.no_sync()
            with sync:
                with self.autocast:
                    loss = self.ddp_model(x, y).loss
                (loss / cfg.grad_accum).backward()
            loss_sum += loss.detach().float()
        grad_norm = optimizer_step(self.model, self.optimizer, self.schedule(self.step), cfg.grad_clip)
        self.step += 1
        self.tokens_seen += cfg.tokens_per_step * self.ctx.world_size
        return float(all_reduce_mean(loss_sum / cfg.grad_accum, self.ctx)), grad_norm

    def validate(self) -> float | None:
        if self.val_loader is None:
            return None
        val = evaluate(self.ddp_model, self.val_loader, self.cfg.eval_batches, self.autocast, self.ctx)
        self.log.write(step=self.step, val_loss=val)
        return val

    def run(self, stop_at: int | None = None) -> dict:
        """Trains to ``max_steps`` (or only up to step ``stop_at``, as if interrupted there)."""
        # the main process holds the output directory for the whole run: a second run there is refused
        hold = hold_directory(self.out) if self.ctx.is_main else contextlib.nullcontext()
        with hold:
            return self._run(stop_at)

    def _run(self, stop_at: int | None) -> dict:
        from fastllm.kernels import force_backend
        from tqdm.auto import tqdm

        cfg = self.cfg
        resumed = cfg.resume and self.resume()
        if resumed:
            self.log.truncate_after(self.step)
        history, val_history = [], []
        if not resumed:
            self.log.write(event="start", config=cfg.to_dict(), model=self.model_config.to_dict(),
                           params=self.model.num_params(non_embedding=False), world_size=self.ctx.world_size)
        bar = tqdm(total=cfg.max_steps, initial=self.step, desc="training", unit="step",
                   disable=not (cfg.progress and self.ctx.is_main), dynamic_ncols=True)
        self.ddp_model.train()
        window_tokens, window_time = 0, 0.0
        val_loss = None
        with force_backend(cfg.kernels), bar:
            end = cfg.max_steps if stop_at is None else min(stop_at, cfg.max_steps)
            while self.step < end:
                start = time.perf_counter()
                loss, grad_norm = self.train_step()
                if self.ctx.device.type == "cuda":
                    torch.cuda.synchronize(self.ctx.device)
                window_time += time.perf_counter() - start
                window_tokens += cfg.tokens_per_step * self.ctx.world_size
                check_finite(loss, self.step)
                history.append((self.step, loss))
                bar.update(1)
                if self.step % cfg.log_interval == 0 or self.step == cfg.max_steps:
                    tps = window_tokens / max(window_time, 1e-9)
                    util = mfu(tps, self.flops_per_token, self.peak, self.ctx.world_size)
                    self.log.write(step=self.step, loss=loss, lr=self.schedule(self.step - 1),
                                   grad_norm=grad_norm, tokens=self.tokens_seen, tokens_per_s=tps, mfu=util)
                    bar.set_postfix(loss=f"{loss:.3f}", lr=f"{self.schedule(self.step - 1):.2e}",
                                    tok_s=f"{tps:,.0f}", **({"mfu": f"{util:.1%}"} if util else {}))
                    window_tokens, window_time = 0, 0.0
                if self.step % cfg.eval_interval == 0 or self.step == cfg.max_steps:
                    val_loss = self.validate()
                    if val_loss is not None:
                        val_history.append((self.step, val_loss))
                        if cfg.progress and self.ctx.is_main:
                            bar.write(f"step {self.step}: validation loss {val_loss:.4f}")
                if self.step % cfg.checkpoint_interval == 0 or self.step == cfg.max_steps:
                    self.save()
        model_dir = None
        if cfg.export and self.ctx.is_main and self.step == cfg.max_steps:
            model_dir = self.out / MODEL_DIR
            self.model.save_pretrained(model_dir, tokenizer=self.tokenizer)
        barrier(self.ctx)
        return {
            "steps": self.step,
            "tokens": self.tokens_seen,
            "history": history,
            "val_history": val_history,
            "final_loss": history[-1][1] if history else None,
            "final_val_loss": val_loss,
            "model_dir": str(model_dir) if model_dir else None,
            "resumed": resumed,
        }


def train(cfg: TrainConfig) -> dict:
    """Runs a whole pre-training (joining torchrun's process group when launched by it)."""
    ctx = init_distributed(cfg.device)
    try:
        return Trainer(cfg, ctx).run()
    finally:
        shutdown(ctx)
