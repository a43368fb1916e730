"""Run by tests/test_recipes.py in a fresh process (``python -m tests.recipes_compile``):
the recipe pieces inside ``torch.compile(fullgraph=True)`` with the default inductor
backend, against eager.  A host synchronisation (``.item()``, ``float(tensor)``) or a
Python branch on a tensor's value is a graph break, which ``fullgraph=True`` turns into
an error.  Two compiled steps, to keep the compile time short:

- a discriminator step: ``adopt_weight`` and ``cosine_decay`` of a 0-d tensor step,
  ``LeCamRegularizer`` (buffers updated in the graph), ``lecam_penalty`` and
  ``approx_r1_penalty`` (the list-critic ``r1_penalty``/``r2_penalty``/``gradient_penalty``
  are not checked here: they are the existing double-backward penalties);
- a generator step with its backward inside: ``adaptive_weight``, ``PathLengthRegularizer``
  and ``GradBalancer`` (``torch.autograd.grad`` needs ``trace_autograd_ops=True`` in torch
  2.13; the losses are computed inside the compiled function).

``fallback_random`` makes inductor draw ``randn_like`` as eager does.  Prints one line
per failure and ``OK <count>`` at the end."""
from __future__ import annotations

import sys

import torch
import torch._inductor.config

import fastgan
from fastgan import schedules

torch._dynamo.config.trace_autograd_ops = True
torch._inductor.config.fallback_random = True


def _models():
    torch.manual_seed(0)
    critic = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    dec = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2 * 3 * 4))
    return critic, dec


def d_step(critic, lecam, step, real, fake, noise):
    gate = schedules.adopt_weight(1.0, step, 3)
    gamma = schedules.cosine_decay(step, 10, 1.0, 0.1, warmup=2)
    d_real, d_fake = critic(real), critic(fake)
    loss = fastgan.F.hinge_d_loss(d_real, d_fake) * gate + lecam(d_real, d_fake) * 0.3 \
        + fastgan.F.lecam_penalty(d_real, d_fake, 0.1, -0.1) \
        + gamma * fastgan.approx_r1_penalty(critic, real, sigma=0.05, noise=noise)
    return loss, gate, gamma


def g_step(dec, critic, pl, bal, z, target):
    img = dec(z).view(-1, 2, 3, 4)
    rec = (img - target).abs().mean()
    g = -critic(img.flatten(1)[:, :4]).mean()
    lam = fastgan.F.adaptive_weight(rec, g, dec[2].weight)
    pen = pl(img, z)
    pen.backward(retain_graph=True)  # the penalty is not a loss of img: it goes around the balancer
    effective = bal.backward({"rec": rec, "adv": lam * g}, img)
    return effective + pen.detach(), lam


def _compare(name, got, want, failures, tol=1e-5):
    for i, (a, b) in enumerate(zip(got, want)):
        if a is None and b is None:
            continue
        if a is None or b is None or not torch.allclose(a, b, rtol=tol, atol=tol):
            failures.append(f"FAIL {name} [{i}]: compiled {a} vs eager {b}")


def main() -> int:
    failures, count = [], 0
    gen = torch.Generator().manual_seed(1)
    # discriminator step, three steps (the 0-d step and the buffers change; no recompile needed)
    runs = {}
    for mode in ("eager", "compiled"):
        critic, _ = _models()
        lecam = fastgan.nn.LeCamRegularizer(decay=0.9)
        fn = d_step if mode == "eager" else torch.compile(d_step, fullgraph=True)
        out = []
        gen.manual_seed(1)
        for s in range(3):
            real, fake = torch.randn(5, 4, generator=gen), torch.randn(5, 4, generator=gen)
            noise = torch.randn(5, 4, generator=gen)
            loss, gate, gamma = fn(critic, lecam, torch.tensor(s + 1), real, fake, noise)
            grads = torch.autograd.grad(loss, list(critic.parameters()))
            out.append([loss.detach(), gate, gamma, lecam.ema_real.clone(), lecam.ema_fake.clone(), *grads])
        runs[mode] = out
    for s, (a, b) in enumerate(zip(runs["compiled"], runs["eager"])):
        _compare(f"d_step {s}", a, b, failures)
        count += 1
    # generator step with its backward inside the compiled function
    runs = {}
    for mode in ("eager", "compiled"):
        critic, dec = _models()
        pl, bal = fastgan.nn.PathLengthRegularizer(), fastgan.GradBalancer({"rec": 1.0, "adv": 0.5})
        fn = g_step if mode == "eager" else torch.compile(g_step, fullgraph=True)
        out = []
        gen.manual_seed(2)
        for s in range(2):
            z = torch.randn(3, 6, generator=gen).requires_grad_()
            target = torch.randn(3, 2, 3, 4, generator=gen)
            dec.zero_grad()
            torch.manual_seed(10 + s)
            effective, lam = fn(dec, critic, pl, bal, z, target)
            out.append([effective, lam, pl.pl_mean.clone(), bal.ema_num.clone(), bal.ema_den.clone(),
                        *(p.grad for p in dec.parameters())])
        runs[mode] = out
    for s, (a, b) in enumerate(zip(runs["compiled"], runs["eager"])):
        _compare(f"g_step {s}", a, b, failures)
        count += 1
    for f in failures:
        print(f)
    print(f"OK {count}" if not failures else f"{len(failures)} failures")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
