"""Train an assembled model's canvas tokens and connectors on the user's data.

    python main.py train --recipe R.json --out RUN                      one CPU or GPU
    accelerate launch --config_file app/train/recipes/accelerate/ddp.yaml main.py train --recipe R.json --out RUN
    (fsdp.yaml / deepspeed.yaml beside it shard the frozen base models when they do not fit one GPU)

R.json names the model folder to train (`python main.py models assemble ...`) and the data (app/train/user_data.py);
app/train/connector_recipe.py has every field. What trains, as in the paper: the canvas tokens, the canvas connector,
the context connector (not on the backbone's native text path, where the backbone's own encoder conditions it),
the adapter's own small parameters (FLUX's pooled projection, SANA's reference marker), and, when the recipe asks,
a LoRA on the MLLM's attention that acts at canvas positions only (app/core/canvas_lora.py). Frozen: the MLLM, the
backbone transformer, the VAE, any native text encoder. The loss is stage 2's rectified flow matching
(app/train/stage2_flow_matching.py: logit-normal shifted timesteps, MSE on the velocity), with CFG dropout of the
instruction; AdamW, linear warm-up then a constant LR, gradient clipping.

Resuming is exact: a step's items, CFG dropout, timesteps, noise and dropout masks are drawn from (seed, step,
micro-batch, process) alone, never from state carried between steps, and the checkpoint holds the trained weights
and AdamW's moments. Running the same command again resumes; raising "steps" in the recipe trains on. Under FSDP or
DeepSpeed the optimizer's moments are sharded across processes and are not saved: a resumed run there restores
the weights and the data order, and its moments start afresh (it says so).

The run folder:
    RUN/checkpoint/     trained.safetensors, optimizer.safetensors (+ .json), progress.json; swapped in whole
    RUN/loss.csv, RUN/loss.png   the loss of every step
    RUN/connectors/     canvas_tokens/, canvas_connector/, context_connector/, adapter/ [, planner_lora/] and
                        training.json: what `python main.py models assemble --connectors RUN/connectors` reads
    RUN/model/          the assembly with the trained connectors (when the trained model is an assembly)
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from app.core.canvas_lora import add_canvas_lora, save_canvas_lora
from app.core.checkpoints import INDEX, canvas_tokens_config, replace_folder
from app.core.request import GenerationRequest
from app.train.connector_recipe import ConnectorRecipe
from app.train.optim_state import load_optimizer, save_optimizer
from app.train.progress import atomic_json
from app.train.schedule import lr_lambda
from app.train.stage2_flow_matching import StopRequest, flow_matching_pair, load_state_file
from app.train.user_data import UserData, read_records

# Recipe fields a begun run may change: how long it trains and how often it saves. Any other change would make
# the resumed run a different run.
RESUMABLE_CHANGES = ("steps", "checkpoint_every")
# The module's parts by state-dict prefix, as the exported connector folders hold them.
PARTS = {"canvas_tokens": "planner.canvas_tokens.", "canvas_connector": "adapter.canvas_connector.",
         "context_connector": "adapter.context_connector."}
FROZEN_ADAPTER_PARTS = ("adapter.transformer.", "adapter.canvas_connector.", "adapter.context_connector.")


class ConnectorStep(nn.Module):
    """The planner and the adapter as one module whose forward is the loss of a micro-batch: the module
    accelerate wraps (DDP, FSDP and DeepSpeed synchronise gradients through a wrapped module's forward)."""

    def __init__(self, pipe):
        super().__init__()
        self.planner = pipe.planner
        self.adapter = pipe.adapter
        self._text_conditioning = pipe.text_conditioning  # MLLM states, or the native text encoder's

    def forward(self, texts, planner_inputs, spec, noisy, t, velocity_target, reference) -> torch.Tensor:
        plan = self.planner(texts, spec, inputs=planner_inputs)
        text = self._text_conditioning(plan, texts, False)
        plan_tokens = self.adapter.prepare_plan(plan.canvas)  # None for a text-only model
        velocity = self.adapter(noisy, t, text.context, text.mask, plan_tokens=plan_tokens, reference=reference,
                                pooled=text.pooled)
        return F.mse_loss(velocity.float(), velocity_target.float())


class ConnectorTrainer:
    def __init__(self, recipe: ConnectorRecipe, out_dir: str | Path, *, device: str | None = None, log=print):
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs, DistributedType

        from app.core.checkpoints import load_model

        self.recipe, self.out, self._log = recipe, Path(out_dir), log
        cpu = device == "cpu" or not torch.cuda.is_available()
        bf16 = recipe.precision == "bfloat16" or (recipe.precision == "auto" and not cpu and torch.cuda.is_bf16_supported())
        # Under `accelerate launch` its config decides the mixed precision; run alone, the recipe does.
        launched = "ACCELERATE_MIXED_PRECISION" in os.environ
        # Some trained parameters get no gradient in some runs (SANA's reference marker outside edits, FLUX's
        # pooled projection on the native text path): DDP must not wait for them.
        self.accelerator = acc = Accelerator(cpu=cpu, mixed_precision=None if launched else ("bf16" if bf16 else "no"),
                                             gradient_accumulation_steps=recipe.grad_accumulation,
                                             kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
        self.sharded = acc.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)
        # Frozen base weights in bfloat16 only where autocast runs and nothing shards them (FSDP and DeepSpeed keep
        # float32 masters and cast for compute themselves).
        base_dtype = torch.bfloat16 if acc.mixed_precision == "bf16" and not self.sharded else torch.float32
        self.pipe = pipe = load_model(recipe.model, device="cpu", dtype=base_dtype)
        if recipe.ablations:
            with_ablations(pipe, recipe.ablations)
        self.task, self.data = self._read_data(pipe)
        size = dict(width=self.data.width, height=self.data.height, frames=self.data.frames)
        self.spec = pipe.canvas_spec(GenerationRequest(self.task, "x", **size))
        self.shift = pipe.defaults.shift if recipe.timestep_shift is None else recipe.timestep_shift

        self.native_text = pipe.adapter.config.get("text_path", "mllm") == "native"
        self.step_module = ConnectorStep(pipe)
        self.trained = self._choose_trained()
        self.progress = {"step": 0, "losses": [], "wall_seconds": 0.0, "recipe": recipe.to_dict()}
        self.optimizer = torch.optim.AdamW([p for _, p in self.trained], lr=recipe.lr,
                                           weight_decay=recipe.weight_decay)
        self._resume_if_begun()
        if self.sharded and acc.state.deepspeed_plugin is not None:
            # DeepSpeed sizes its buffers from the micro-batch, which it cannot read off a data loader here.
            acc.state.deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = recipe.batch
        self._set_modes()
        self.model, self.optimizer = acc.prepare(self.step_module, self.optimizer)
        if acc.gradient_accumulation_steps != recipe.grad_accumulation:
            raise ValueError(f"the DeepSpeed config accumulates {acc.gradient_accumulation_steps} micro-batches a step; "
                             f"the recipe's grad_accumulation is {recipe.grad_accumulation}: make them equal")
        vae = getattr(pipe.codec, "vae", None)
        if vae is not None:
            vae.to(acc.device)
        if pipe.native_text is not None:
            pipe.native_text.to(device=acc.device)
        self._orders: dict[int, np.ndarray] = {}

    def log(self, text: str) -> None:
        if self.accelerator.is_main_process:
            self._log(text)

    # -- what the run is made of ----------------------------------------------------------------------
    def _read_data(self, pipe):
        r, d = self.recipe, pipe.defaults
        records = read_records(r.data)
        kind = records[0].kind
        width, height = r.width or d.width, r.height or d.height
        pipe.check_size(width, height)
        frames = (r.frames or d.frames) if kind == "video" else 1
        if kind == "video":
            pipe.check_frames(frames)
        data = UserData(records, width, height, frames)
        if data.task.value not in pipe.tasks:
            raise ValueError(f"{r.data} holds {data.task.label.lower()} records, and '{pipe.name}' does "
                             f"{', '.join(t.replace('_', ' ') for t in pipe.tasks)}: assemble a backbone that does it")
        if len(data) < r.batch:
            self.log(f"note: {len(data)} records and a batch of {r.batch}: each batch repeats records")
        return data.task, data

    def _choose_trained(self) -> list[tuple[str, nn.Parameter]]:
        """Freeze everything, then let the trained parts learn (in float32, whatever the base dtype). Returns
        them as (name in ConnectorStep, parameter), sorted by name: the optimizer's order, stable across runs."""
        r, model = self.recipe, self.step_module
        model.requires_grad_(False)
        if r.lora.config() is not None:
            add_canvas_lora(model.planner, r.lora.config())
        names = [n for n, p in model.named_parameters() if p.requires_grad]  # the LoRA's
        names += [n for n, _ in model.named_parameters() if n.startswith("adapter.") and
                  not n.startswith(FROZEN_ADAPTER_PARTS)]
        names += [n for n, _ in model.named_parameters() if n.startswith(PARTS["canvas_connector"])]
        if not self.native_text:
            names += [n for n, _ in model.named_parameters() if n.startswith(PARTS["context_connector"])]
        if r.train_canvas_tokens:
            names += [n for n, _ in model.named_parameters() if n.startswith(PARTS["canvas_tokens"])]
        params = dict(model.named_parameters())
        trained = []
        for name in sorted(set(names)):
            p = params[name]
            p.data = p.data.float()
            p.requires_grad_(True)
            trained.append((name, p))
        if not trained:
            raise ValueError(f"nothing to train in {r.model}: it has no canvas connector, and the recipe trains "
                             f"neither the canvas tokens nor a LoRA")
        count = sum(p.numel() for _, p in trained)
        self.log(f"training {count / 1e6:.2f} M parameters ({', '.join(self._part_names(trained))}); "
                 f"{'native' if self.native_text else 'MLLM'} text path; {len(self.data)} {self.data.kind} records "
                 f"at {self.data.width}x{self.data.height}" + (f", {self.data.frames} frames" if self.data.frames > 1 else ""))
        return trained

    def _set_modes(self) -> None:
        """The frozen base models in eval mode; dropout runs only in what trains (the video context connector's,
        the LoRA's)."""
        model = self.step_module
        model.eval()
        trained_prefixes = [prefix for part, prefix in PARTS.items() if part != "context_connector" or not self.native_text]
        for name, module in model.named_modules():
            if name + "." in trained_prefixes or ".lora_dropout." in name + ".":
                module.train()

    @staticmethod
    def _part_names(trained) -> list[str]:
        parts = []
        for name, _ in trained:
            part = next((k for k, prefix in PARTS.items() if name.startswith(prefix)),
                        "planner LoRA" if ".lora_" in name else "adapter")
            if part not in parts:
                parts.append(part)
        return parts

    # -- resuming -----------------------------------------------------------------------------------------
    @property
    def checkpoint(self) -> Path:
        return self.out / "checkpoint"

    def _resume_if_begun(self) -> None:
        saved = self.checkpoint / "progress.json"
        if not saved.exists():
            return
        progress = json.loads(saved.read_text())
        before, now = progress["recipe"], self.recipe.to_dict()
        changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k) and k not in RESUMABLE_CHANGES)
        if changed:
            raise ValueError(f"{self.out} was begun with another recipe (it differs in {', '.join(changed)}): resume "
                             f"with the recipe it began with, or train into another --out folder")
        state = load_state_file(self.checkpoint / "trained.safetensors")
        params = dict(self.trained)
        if set(state) != set(params):
            raise ValueError(f"the checkpoint in {self.checkpoint} does not hold this run's trained parameters")
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(state[name])
        if (self.checkpoint / "optimizer.safetensors").exists() and not self.sharded:
            load_optimizer(self.optimizer, self.checkpoint / "optimizer.safetensors")
        else:
            self.log("the optimizer's moments were not saved with this checkpoint: they start afresh")
        progress["recipe"] = now
        self.progress = progress
        self.log(f"resumed at step {progress['step']}")

    # -- one micro-batch ---------------------------------------------------------------------------------
    def _order(self, position: int) -> int:
        """The record at `position` of the endless stream of epochs, each a permutation drawn from (seed, epoch)."""
        n = len(self.data)
        epoch = position // n
        if epoch not in self._orders:
            self._orders = {epoch: np.random.default_rng([self.recipe.seed, epoch]).permutation(n)}
        return int(self._orders[epoch][position % n])

    def micro_batch(self, step: int, micro: int) -> dict:
        """The inputs of micro-batch `micro` of optimizer step `step` on this process, drawn from those numbers."""
        r, acc, pipe = self.recipe, self.accelerator, self.pipe
        index = step * r.grad_accumulation + micro
        first = (index * acc.num_processes + acc.process_index) * r.batch
        items = [self.data.item(self._order(p)) for p in range(first, first + r.batch)]
        rng = np.random.default_rng([r.seed, index, acc.process_index])
        texts = ["" if rng.random() < r.cfg_dropout else it["text"] for it in items]
        sources = [it["source"] for it in items] if items[0]["source"] is not None else None
        planner_inputs = pipe.planner.processor(texts, images=[[s] for s in sources] if sources else None)
        device, (w, h) = acc.device, (self.data.width, self.data.height)
        encode = pipe.codec.encode
        target = torch.cat([encode(it["target"], h, w, device, torch.float32) for it in items])
        reference = None
        if sources is not None:
            reference, _ = pipe.adapter.condition(torch.cat([encode(s, h, w, device, torch.float32) for s in sources]),
                                                  self.task)
        seed = int(rng.integers(2**62))
        gen = torch.Generator(device=device).manual_seed(seed)
        noisy, t, velocity_target = flow_matching_pair(target, gen, r.logit_normal_std, self.shift)
        return {"texts": texts, "planner_inputs": planner_inputs, "spec": self.spec, "noisy": noisy, "t": t,
                "velocity_target": velocity_target, "reference": reference, "dropout_seed": seed + 1}

    def loss(self, batch: dict) -> torch.Tensor:
        # Dropout (the video context connector's, the LoRA's) draws from the global generator: seeded per
        # micro-batch, so a resumed run draws the same masks.
        torch.manual_seed(batch["dropout_seed"])
        inputs = {k: v for k, v in batch.items() if k != "dropout_seed"}
        return self.model(**inputs)

    # -- the loop ------------------------------------------------------------------------------------------
    def run(self, max_minutes: float | None = None) -> Path:
        r, acc = self.recipe, self.accelerator
        start = self.progress["step"]
        lr_at = lr_lambda(r.warmup)
        t_begin, wall0 = time.time(), self.progress["wall_seconds"]
        stop = StopRequest()
        bar = tqdm(range(start, r.steps), desc=f"training {r.name}", initial=start, total=r.steps,
                   disable=not acc.is_main_process or None)
        for step in bar:
            for group in self.optimizer.param_groups:
                group["lr"] = r.lr * lr_at(step)
            losses = []
            for micro in range(r.grad_accumulation):
                batch = self.micro_batch(step, micro)
                with acc.accumulate(self.model):
                    loss = self.loss(batch)
                    acc.backward(loss)
                    if acc.sync_gradients:
                        acc.clip_grad_norm_(self.model.parameters(), r.grad_clip)
                    self.optimizer.step()
                    self.optimizer.zero_grad(set_to_none=True)
                losses.append(acc.gather(loss.detach()).mean().item())
            done = step + 1
            self.progress["losses"].append([done, float(np.mean(losses)), r.lr * lr_at(step)])
            bar.set_postfix(loss=f"{np.mean(losses):.4f}")
            out_of_time = max_minutes is not None and (time.time() - t_begin) / 60 > max_minutes
            stopping = self._agreed(out_of_time or stop.requested)
            if done % r.checkpoint_every == 0 or done == r.steps or stopping:
                self.progress["step"] = done
                self.progress["wall_seconds"] = wall0 + time.time() - t_begin
                self.save_checkpoint()
            if stopping:
                self.log(f"stopping at step {done}: {'stop requested' if stop.requested else 'time budget reached'} "
                         f"(run the same command again to resume)")
                break
        bar.close()
        stop.restore()
        return self.export()

    def _agreed(self, flag: bool) -> bool:
        """Whether any process wants to stop: all of them must stop at the same step, or the rest would wait
        for each other's gradients forever."""
        if self.accelerator.num_processes == 1:
            return flag
        return bool(self.accelerator.reduce(torch.tensor(float(flag), device=self.accelerator.device), "sum") > 0)

    # -- saving --------------------------------------------------------------------------------------------
    def _full_state(self) -> dict[str, torch.Tensor]:
        """ConnectorStep's state dict, whole on the main process (FSDP and DeepSpeed gather it; every process
        must call this)."""
        return self.accelerator.get_state_dict(self.model)

    def save_checkpoint(self) -> None:
        state = self._full_state()
        if self.accelerator.is_main_process:
            tmp = self.checkpoint.with_name("checkpoint.saving")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            from safetensors.torch import save_file

            save_file({name: state[name].detach().float().contiguous().cpu() for name, _ in self.trained},
                      str(tmp / "trained.safetensors"))
            if not self.sharded:
                save_optimizer(self.optimizer, tmp / "optimizer.safetensors")
            atomic_json(tmp / "progress.json", self.progress)
            replace_folder(tmp, self.checkpoint)
            self.write_loss_curve()
        self.accelerator.wait_for_everyone()

    def write_loss_curve(self) -> None:
        """RUN/loss.csv (step, loss, lr) and RUN/loss.png."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = self.progress["losses"]
        with open(self.out / "loss.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["step", "loss", "lr"])
            writer.writerows(rows)
        fig, ax = plt.subplots(figsize=(6, 3.5))
        if rows:
            steps, losses = np.array([row[0] for row in rows]), np.array([row[1] for row in rows])
            ax.plot(steps, losses, lw=0.6, alpha=0.4, label="step")
            window = max(1, len(rows) // 20)  # a running mean: single steps are noisy (one t, one noise each)
            if window > 1:
                smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
                ax.plot(steps[window - 1:], smooth, label=f"mean of {window}")
            ax.legend()
        ax.set_xlabel("step")
        ax.set_ylabel("flow-matching loss")
        ax.set_title(self.recipe.name)
        fig.tight_layout()
        fig.savefig(self.out / "loss.png", dpi=90)
        plt.close(fig)

    def export(self) -> Path:
        """RUN/connectors in the layout `models assemble --connectors` reads, and RUN/model when the trained model
        is an assembly. Returns the connectors folder."""
        state = self._full_state()
        folder = self.out / "connectors"
        if self.accelerator.is_main_process:
            self._write_connectors(state, folder)
            self._assemble_model(folder)
        self.accelerator.wait_for_everyone()
        return folder

    def _write_connectors(self, state: dict[str, torch.Tensor], folder: Path) -> None:
        planner, adapter = self.pipe.planner, self.pipe.adapter

        def part(prefix: str, keep=lambda key: True) -> dict[str, torch.Tensor]:
            """The tensors under `prefix` that `keep`, copied to the CPU (only those: not a whole base model)."""
            return {k[len(prefix):]: v.detach().float().contiguous().cpu() for k, v in state.items()
                    if k.startswith(prefix) and keep(k)}

        tmp = folder.with_name(folder.name + ".saving")
        shutil.rmtree(tmp, ignore_errors=True)
        configs = {
            "canvas_tokens": canvas_tokens_config(planner.canvas_tokens, planner.temporal_stride),
            "context_connector": {"mllm_dim": adapter.config["mllm_dim"]},
        }
        if adapter.canvas_connector is not None:
            configs["canvas_connector"] = adapter.canvas_connector.config
        for name, config in configs.items():
            save_module_dict(tmp / name, config, part(PARTS[name]))
        own = part("adapter.", lambda key: not key.startswith(FROZEN_ADAPTER_PARTS))
        save_module_dict(tmp / "adapter", adapter.config, own or {"_empty": torch.zeros(0)})
        if getattr(planner, "canvas_lora", None) is not None:
            language_model = next(n for n, m in self.step_module.named_modules() if m is planner.mllm.language_model)
            save_canvas_lora(planner, tmp / "planner_lora", part(language_model + ".", lambda key: ".lora_" in key))
        record = {"model": self.recipe.model, "data": self.recipe.data, "task": self.task.value,
                  "records": len(self.data), "steps": self.progress["step"],
                  "wall_seconds": round(self.progress["wall_seconds"], 1),
                  "final_loss": self.progress["losses"][-1][1] if self.progress["losses"] else None,
                  "recipe": self.recipe.to_dict()}
        (tmp / "training.json").write_text(json.dumps(record, indent=2))
        replace_folder(tmp, folder)
        self.log(f"connectors: {folder}")

    def _assemble_model(self, connectors: Path) -> None:
        """RUN/model: the assembly the run trained, with its connectors and any planner LoRA (the base
        checkpoints are pointed at, never copied)."""
        from app.core.assembly import assemble

        index = json.loads((Path(self.recipe.model) / INDEX).read_text())
        origin = index.get("assembled_from")
        if not origin:
            return
        model = assemble(origin["planner"], origin["backbone"], self.out / "model", connectors_dir=connectors,
                         name=self.recipe.name, overwrite=True)
        self.log(f"model: {model} (python main.py generate --model {model} ...)")


def with_ablations(pipe, ablations: list[str]) -> None:
    """Rebuild the pipeline's connectors fresh with the method's ablation switches (app/core/ablations.py)
    around the same backbone, and lay the canvas tokens out as they ask."""
    from app.core.ablations import canvas_positions
    from app.core.backbones import build_adapter

    adapter = pipe.adapter
    config = {**adapter.config, "canvas": True, "ablations": list(ablations)}
    rebuilt = build_adapter(config, adapter.transformer).to(next(adapter.transformer.parameters()).dtype)
    pipe.adapter = rebuilt
    pipe.planner.canvas_tokens.positions = canvas_positions(ablations)


def save_module_dict(folder: Path, config: dict, state: dict[str, torch.Tensor]) -> None:
    """config.json + model.safetensors from a state dict (checkpoints.save_module takes a module)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    save_file(state, str(folder / "model.safetensors"))


# The train command's flags that steer the shapes-world trainer only (app/train/loop.py).
SHAPES_ONLY_FLAGS = ("no_canvas", "start", "planner", "teach_only", "teach_minutes", "cooldown_steps", "workers")


def train_from_command_line(args) -> int:
    """`python main.py train --recipe R.json [--out RUN] [--device D] [--max-minutes M]` for a connector recipe."""
    given = [f"--{name.replace('_', '-')}" for name in SHAPES_ONLY_FLAGS if getattr(args, name, None)]
    if given:
        raise ValueError(f"{', '.join(given)} steer the shapes-world trainer; {args.recipe} names user data, and its "
                         f"run resumes when the same command runs again")
    trainer = ConnectorTrainer(ConnectorRecipe.load(args.recipe), args.out, device=args.device)
    folder = trainer.run(max_minutes=args.max_minutes)
    if trainer.accelerator.is_main_process:
        print(f"connectors: {folder}; loss curve: {Path(args.out) / 'loss.png'}")
    return 0
