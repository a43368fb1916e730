"""Run by tests/test_codebases.py in a fresh process (``python -m tests.codebases_compile``):
the recipes that take gradients inside (taming's adaptive weight, R3GAN's R1 + R2) and
Open-MAGVIT2's LeCam buffers, each step inside ``torch.compile(fullgraph=True)`` with the
default inductor backend, its backward included, against eager.  A host synchronisation
or a Python branch on a tensor's value would be a graph break, an error under
``fullgraph=True``.  Prints one line per failure and ``OK <count>`` at the end."""
from __future__ import annotations

import sys

import torch

from fastgan import recipes_compat as rc
from fastgan import schedules

torch._dynamo.config.trace_autograd_ops = True  # torch.autograd.grad inside the graph (torch 2.13)


def _models():
    torch.manual_seed(0)
    dec = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 24))
    disc = torch.nn.Sequential(torch.nn.Linear(24, 9))
    critic = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), torch.nn.Softplus(), torch.nn.Flatten(),
                                 torch.nn.Linear(24, 1))
    return dec, disc, critic


def taming_step(dec, disc, z, target, step):
    rec = dec(z)
    nll = (rec - target).abs().mean()
    term, d_weight, _ = rc.taming_g_loss(nll, disc(rec).view(-1, 1, 3, 3), dec[2].weight, global_step=step,
                                         disc_start=1, disc_weight=0.5)
    loss = nll + term
    loss.backward()
    return loss.detach(), d_weight


def r3gan_step(critic, real, fake, nimg):
    gamma = schedules.cosine_decay(nimg, 10.0, 2.0, 0.5)
    loss = rc.r3gan_d_loss(lambda x: critic(x).squeeze(1), real, fake, gamma)
    loss.backward()
    return loss.detach(), gamma


def magvit2_step(mod, disc, real, fake, step):
    loss = mod.d_loss(disc(real).view(-1, 1, 3, 3), disc(fake).view(-1, 1, 3, 3), global_step=step)
    loss.backward()
    return loss.detach()


def _compare(name, got, want, failures, tol=1e-5):
    for i, (a, b) in enumerate(zip(got, want)):
        if not torch.allclose(torch.as_tensor(a), torch.as_tensor(b), rtol=tol, atol=tol):
            failures.append(f"FAIL {name} [{i}]: compiled {a} vs eager {b}")


def main() -> int:
    failures, count = [], 0
    runs = {}
    for mode in ("eager", "compiled"):
        dec, disc, critic = _models()
        mod = rc.OpenMAGVIT2GANLoss(disc_start=1, lecam_loss_weight=0.05)
        wrap = (lambda f: f) if mode == "eager" else (lambda f: torch.compile(f, fullgraph=True))
        steps = (wrap(taming_step), wrap(r3gan_step), wrap(magvit2_step))
        gen = torch.Generator().manual_seed(3)
        out = []
        for s in range(3):
            z, target = torch.randn(4, 6, generator=gen), torch.randn(4, 24, generator=gen)
            real, fake = torch.randn(4, 2, 5, 4, generator=gen), torch.randn(4, 2, 5, 4, generator=gen)
            xr, xf = torch.randn(4, 24, generator=gen), torch.randn(4, 24, generator=gen)
            for m in (dec, disc, critic):
                m.zero_grad()
            t = torch.tensor(s)
            loss_t, d_weight = steps[0](dec, disc, z, target, t)
            loss_r, gamma = steps[1](critic, real, fake, t * 4.0)
            loss_m = steps[2](mod, disc, xr, xf, t)
            out.append([loss_t, d_weight, loss_r, gamma, loss_m, mod.lecam.ema_real.clone(),
                        mod.lecam.ema_fake.clone(), *(p.grad.clone() for m in (dec, disc, critic)
                                                      for p in m.parameters())])
        runs[mode] = out
    for s, (a, b) in enumerate(zip(runs["compiled"], runs["eager"])):
        _compare(f"step {s}", a, b, failures)
        count += 1
    for f in failures:
        print(f)
    print(f"OK {count}" if not failures else f"{len(failures)} failures")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
