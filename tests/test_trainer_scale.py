"""The trainer at real size, shown on CPU with gloo: meta-device build and per-shard
materialisation, per-shard weight loading from every source, trainable added token rows
under a frozen LM with FSDP2, and loss normalisation over the whole optimizer step."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from scale_helpers import ENC, LM, batch, report, rows, spawn, tiny_net, tokenizer

from trainer.checkpoint import init_weights
from trainer.materialize import named_params
from trainer.model import first_added_token, parallelize


class Allocations(torch.utils._python_dispatch.TorchDispatchMode):
    """Largest tensor (elements) any op creates off the meta device; a DTensor counts
    its local part."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        from torch.distributed.tensor import DTensor

        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, DTensor):
                t = t.to_local()
            if isinstance(t, torch.Tensor) and not t.is_meta:
                self.largest = max(self.largest, t.numel())
        return out


def _full(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    from torch.distributed.tensor import DTensor

    return {n: (p.full_tensor() if isinstance(p, DTensor) else p.detach()).clone()
            for n, p in named_params(net).items()}


def _mesh(world: int):  # type: ignore[no-untyped-def]
    from torch.distributed.device_mesh import init_device_mesh

    return init_device_mesh("cpu", (world,))


# ---------------------------------------------------------------- meta build, sharded init


def _shard_section(world: int, tok) -> dict:  # type: ignore[no-untyped-def]
    from torch.distributed.tensor import DTensor, Shard

    net = tiny_net(tok)
    largest_full = max(p.numel() for p in net.parameters())
    assert all(p.is_meta for p in net.parameters())
    with Allocations() as seen:
        parallelize(net, _mesh(world))
        init_weights(net, "cpu", seed=7)
    sharded = all(isinstance(p, DTensor) and p.placements == (Shard(0),)
                  for p in net.parameters())
    biggest_local = max(p.to_local().numel() for p in net.parameters())
    ref = tiny_net(tok)
    init_weights(ref, "cpu", seed=7)  # one process, unsharded
    full, want = _full(net), _full(ref)
    same = sorted(n for n in want if torch.equal(full[n], want[n]))
    embed = named_params(net)["lm.model.embed_tokens.weight"]
    return dict(sharded=sharded, largest_alloc=seen.largest, largest_full=largest_full,
                biggest_local=biggest_local, same=same, names=sorted(want),
                rows=embed.to_local().shape[0])


def test_sharded_build_never_holds_a_full_parameter(two_ranks: list[dict]) -> None:
    out = [r["shard"] for r in two_ranks]
    vocab_rows = -(-155165 // 64) * 64
    assert [r["rows"] for r in out] == [vocab_rows // 2, vocab_rows // 2]
    for r in out:
        assert r["sharded"]
        # the embedding (9.9 M values) was never allocated whole, only its half
        assert r["largest_full"] == vocab_rows * LM["hidden_size"]
        assert r["largest_alloc"] <= r["biggest_local"] < r["largest_full"]
        # the sharded init is bit-identical to the unsharded one
        assert r["same"] == r["names"]


# ------------------------------------------------------------------ loading, each source


def _write_sources(tmp: Path, tok) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    """A Whisper and a Qwen2 folder (vocabulary without the audio tokens), and a whole
    model as safetensors and as a Lightning checkpoint."""
    from safetensors.torch import save_file
    from transformers import Qwen2Config, Qwen2ForCausalLM, WhisperConfig
    from transformers import WhisperForConditionalGeneration as Whisper

    torch.manual_seed(3)
    Whisper(WhisperConfig(**ENC)).save_pretrained(tmp / "whisper", safe_serialization=True)
    Qwen2ForCausalLM(Qwen2Config(**LM, vocab_size=151936)).save_pretrained(
        tmp / "qwen2", safe_serialization=True)
    model = tiny_net(tok)
    init_weights(model, "cpu", seed=11)
    # a tied head is stored once (safetensors refuses shared tensors), here by its other name
    state = {k: v.contiguous() for k, v in model.state_dict().items()
             if k != "lm.model.embed_tokens.weight"}
    save_file(state, tmp / "model.safetensors")
    torch.save({"state_dict": {f"net.{k}": v for k, v in state.items()}}, tmp / "model.ckpt")
    return {"whisper": tmp / "whisper", "qwen2": tmp / "qwen2"}


def _load_section(world: int, tok, tmp: Path) -> dict:  # type: ignore[no-untyped-def]
    from safetensors.torch import load_file
    from torch.distributed import checkpoint as dcp

    results = {}
    folders = {"encoder_path": str(tmp / "whisper"), "lm_path": str(tmp / "qwen2")}
    net = tiny_net(tok, **folders)
    parallelize(net, _mesh(world))
    init_weights(net, "cpu", seed=7)
    got = _full(net)
    enc = load_file(tmp / "whisper" / "model.safetensors")
    lm = load_file(tmp / "qwen2" / "model.safetensors")
    emb = got["lm.model.embed_tokens.weight"]
    results["whisper"] = all(torch.equal(got["encoder.whisper." + k[len("model.encoder."):]], v)
                             for k, v in enc.items() if k.startswith("model.encoder."))
    results["qwen2_rows"] = torch.equal(emb[:151936], lm["model.embed_tokens.weight"])
    results["qwen2"] = all(torch.equal(got["lm." + k], v) for k, v in lm.items()
                           if "embed_tokens" not in k)
    ref = tiny_net(tok, **folders)
    init_weights(ref, "cpu", seed=7)  # unsharded: the rows past 151,936 are initialised alike
    results["added_rows"] = torch.equal(emb, ref.lm.model.embed_tokens.weight)
    whole = load_file(tmp / "model.safetensors")
    whole["lm.model.embed_tokens.weight"] = whole.pop("lm.lm_head.weight")  # the model's name
    for source in ("model.safetensors", "model.ckpt"):
        net = tiny_net(tok)
        parallelize(net, _mesh(world))
        init_weights(net, "cpu", seed=7, init_from=str(tmp / source))
        got = _full(net)
        results[source] = all(torch.equal(got[k], whole[k]) for k in whole)
        results[source + "_all"] = sorted(got) == sorted(whole)
    # a distributed checkpoint in the trainer's layout, read back sharded and unsharded
    dcp.save({"state_dict": {f"net.{k}": p for k, p in named_params(net).items()}},
             checkpoint_id=str(tmp / "dcp"))
    net = tiny_net(tok)
    parallelize(net, _mesh(world))
    init_weights(net, "cpu", seed=7, init_from=str(tmp / "dcp"))
    results["dcp"] = all(torch.equal(v, whole[k]) for k, v in _full(net).items())
    one = tiny_net(tok)
    init_weights(one, "cpu", seed=7, init_from=str(tmp / "dcp"))
    results["dcp_unsharded"] = all(torch.equal(v, whole[k]) for k, v in _full(one).items())
    return results


def test_every_weight_source_loads_into_shards(two_ranks: list[dict]) -> None:
    for r in two_ranks:
        assert r["load"] == {"whisper": True, "qwen2_rows": True, "qwen2": True, "added_rows": True,
                     "model.safetensors": True, "model.safetensors_all": True,
                     "model.ckpt": True, "model.ckpt_all": True, "dcp": True,
                     "dcp_unsharded": True}


def test_a_checkpoint_of_another_model_is_refused(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    save_file({"projector.weight": torch.zeros(3, 3)}, tmp_path / "bad.safetensors")
    net = tiny_net(tokenizer())
    with pytest.raises(ValueError, match=r"projector\.weight has shape"):
        init_weights(net, "cpu", init_from=str(tmp_path / "bad.safetensors"))


# ------------------------------------------------ frozen LM, trainable added rows (FSDP2)


def _frozen_lm_section(rank: int, world: int, tok) -> dict:  # type: ignore[no-untyped-def]
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate
    from torch.distributed.device_mesh import init_device_mesh

    from trainer.module import _optimizer_groups

    conf = Path(__file__).resolve().parents[1] / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        # untied LM head (as Qwen-7B): the head's frozen rows must escape weight decay too
        cfg = compose(config_name="config", overrides=[
            "+experiment=pretrain", "model=tiny", "trainer=cpu", "paths.run_dir=unused",
            "model.module.net.lm.tie_word_embeddings=false", "optim.optimizer.lr=0.01"])
    module = instantiate(cfg.model.module, _convert_="all", tokenizer=tok, scheduler=None,
                         optimizer=instantiate(cfg.optim.optimizer, _convert_="all"),
                         init_seed=cfg.seed)
    module._device_mesh = init_device_mesh(
        "cpu", (world, 1), mesh_dim_names=("data_parallel", "tensor_parallel"))
    module.configure_model()
    net = module.net
    before = _full(net)
    opt = module.optimizer_factory(_optimizer_groups(net))
    for step in range(3):
        b = rows(batch(tok, 4, seed=step), rank * 4 // world, (rank + 1) * 4 // world)
        losses, _ = net(b)
        tokens = torch.tensor([float(losses.numel())])
        torch.distributed.all_reduce(tokens)
        (losses.sum() * world / tokens).backward()
        opt.step()
        opt.zero_grad()
    after = _full(net)
    first = first_added_token(tok)
    used = sorted({int(i) for i in batch(tok, 4)["labels"].flatten() if i >= first})
    out = {}
    for name in ("lm.model.embed_tokens.weight", "lm.lm_head.weight"):
        out[name] = {
            "original_rows_identical": torch.equal(after[name][:first], before[name][:first]),
            "used_new_rows_moved": all(not torch.equal(after[name][i], before[name][i])
                                       for i in used),
        }
    lm_rest = [n for n in before if n.startswith("lm.") and n not in out]
    out["lm_layers_identical"] = all(torch.equal(after[n], before[n]) for n in lm_rest)
    out["encoder_moved"] = not torch.equal(after["encoder.whisper.conv1.weight"],
                                           before["encoder.whisper.conv1.weight"])
    return out


def test_frozen_lm_still_trains_the_added_token_rows(two_ranks: list[dict]) -> None:
    for r in two_ranks:
        rows_ok = {"original_rows_identical": True, "used_new_rows_moved": True}
        assert r["frozen"] == {"lm.model.embed_tokens.weight": rows_ok,
                               "lm.lm_head.weight": rows_ok,
                               "lm_layers_identical": True, "encoder_moved": True}


# ---------------------------------------------------------------- one spawn for all above


def _two_rank_worker(rank: int, world: int, tmp: Path) -> None:
    tok = tokenizer()
    report(tmp, rank, shard=_shard_section(world, tok), load=_load_section(world, tok, tmp),
           frozen=_frozen_lm_section(rank, world, tok))


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """What each of 2 gloo ranks saw (one spawn: starting a process costs ~10 s here)."""
    tmp = tmp_path_factory.mktemp("two_ranks")
    _write_sources(tmp, tokenizer())
    return spawn(_two_rank_worker, 2, tmp)


# ------------------------------------------------ loss over the whole optimizer step


def _grads_of_one_step(micro_batches: list[dict], accumulate: int) -> dict[str, torch.Tensor]:
    """Gradients of the first optimizer step of a real Lightning fit on these batches."""
    import lightning as L
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from trainer.datamodule import with_step_tokens

    conf = Path(__file__).resolve().parents[1] / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["model=tiny", "paths.run_dir=unused"])
    module = instantiate(cfg.model.module, _convert_="all", tokenizer=tokenizer(),
                         scheduler=None, init_seed=cfg.seed,
                         optimizer=instantiate(cfg.optim.optimizer, _convert_="all"))
    grads: dict[str, torch.Tensor] = {}

    class Grab(L.Callback):
        def on_before_optimizer_step(self, trainer, pl_module, optimizer):  # type: ignore[no-untyped-def]
            grads.update({n: p.grad.clone() for n, p in named_params(pl_module.net).items()
                          if p.grad is not None})

    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=1, logger=False,
                        accumulate_grad_batches=accumulate, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[Grab()])
    loader = torch.utils.data.DataLoader(list(with_step_tokens(micro_batches, accumulate)),
                                         batch_size=None, collate_fn=lambda b: b)
    trainer.fit(module, train_dataloaders=loader)
    return grads


def test_two_micro_batches_of_4_give_the_gradients_of_one_batch_of_8() -> None:
    from trainer.datamodule import target_tokens

    torch.set_num_threads(1)
    tok = tokenizer()
    whole = batch(tok, 8)
    halves = [rows(whole, 0, 4), rows(whole, 4, 8)]
    # unequal halves: normalising each micro-batch by its own tokens would differ
    assert target_tokens(halves[0]) != target_tokens(halves[1])
    one = _grads_of_one_step([whole], accumulate=1)
    two = _grads_of_one_step(halves, accumulate=2)
    assert sorted(one) == sorted(two) and len(one) > 20
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=0, atol=1e-6, msg=name)


def test_step_tokens_count_each_group_before_its_first_batch() -> None:
    from trainer.datamodule import with_step_tokens

    # position t predicts label t + 1: the first label of a row is never scored
    labels = [torch.tensor([[7, 5, 6, -100], [-100, -100, 7, 8]]),  # 4 scored tokens
              torch.tensor([[-100, 1, 2, 3], [-100, -100, -100, -100]]),  # 3
              torch.tensor([[-100, 9, -100, -100], [-100, 1, -100, -100]])]  # 2
    batches = [{"labels": lab, "weight": torch.ones(2), "i": i} for i, lab in enumerate(labels)]
    out = list(with_step_tokens(batches, 2))
    assert [(b["i"], b["step_tokens"], b["step_first"]) for b in out] == [
        (0, 7.0, True), (1, 7.0, False), (2, 2.0, True)]


def test_a_folder_of_safetensors_with_an_index_loads(tmp_path: Path) -> None:
    """The converter's layout: the state dict split over files, named by an index."""
    import json

    from safetensors.torch import save_file

    tok = tokenizer()
    source = tiny_net(tok)
    init_weights(source, "cpu", seed=5)
    state = {k: v.contiguous() for k, v in source.state_dict().items()
             if k != "lm.lm_head.weight"}  # tied: stored once
    names = sorted(state)
    half = len(names) // 2
    weight_map = {}
    for i, part in enumerate((names[:half], names[half:])):
        file = f"model-{i + 1:05d}-of-00002.safetensors"
        save_file({k: state[k] for k in part}, tmp_path / file)
        weight_map.update(dict.fromkeys(part, file))
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    (tmp_path / "stray.safetensors").write_bytes(b"not listed by the index: never opened")
    net = tiny_net(tok)
    init_weights(net, "cpu", seed=0, init_from=str(tmp_path))
    got = net.state_dict()
    assert all(torch.equal(got[k], v) for k, v in state.items())
    assert got["lm.lm_head.weight"] is not None and torch.equal(
        got["lm.lm_head.weight"], state["lm.model.embed_tokens.weight"])
