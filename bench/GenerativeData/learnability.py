#!/usr/bin/python3
"""How fast a small character-level decoder learns a generated math task: exact match of greedy answers over time.

The issue's warning: multi-step arithmetic at character level is slow to learn on 2 cores. This measures a task
difficulty before a teacher recipe is built on it. Debian's python3-torch (1.13, CPU) is all it needs:

    dotnet bench/GenerativeData/bin/Release/net10.0/GenerativeData.dll math --out /tmp/math \
        --train 20000 --pool 0 --validation 0 --test 200 [--difficulty N]
    /usr/bin/python3 bench/GenerativeData/learnability.py /tmp/math --minutes 20 [--threads 2]

The model is a plain GPT (learned positions, pre-norm, causal attention, GELU MLP, tied head); the loss is on the
assistant's characters only; exact match is GenerativeData's rule (the number after the last '####' equals the
gold one), judged on greedy answers to the test prompts. It prints one line per evaluation.
"""
import argparse
import json
import os
import re
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def load(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            messages = json.loads(line)["messages"]
            rows.append((messages[-2]["content"], messages[-1]["content"]))
    return rows


def final_number(text):
    marker = text.rfind("####")
    if marker < 0:
        return None
    m = re.match(r"\s*\$?\s*([+-]?[0-9][0-9,]*(?:\.[0-9]+)?)", text[marker + 4:])
    return m.group(1).replace(",", "") if m else None


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x, mask):
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class Gpt(nn.Module):
    def __init__(self, vocab, context, d, layers, heads):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(context, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln = nn.LayerNorm(d)
        # GPT-2's initialisation: with the head tied to N(0, 1) embeddings the first logits are far too large.
        nn.init.normal_(self.tok.weight, std=0.02)
        nn.init.normal_(self.pos.weight, std=0.02)

    def forward(self, ids):
        t = ids.shape[1]
        mask = torch.triu(torch.full((t, t), float("-inf")), diagonal=1)
        x = self.tok(ids) + self.pos(torch.arange(t))
        for block in self.blocks:
            x = block(x, mask)
        return self.ln(x) @ self.tok.weight.T


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("--minutes", type=float, default=20)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--d", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--eval-samples", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)

    train = load(os.path.join(args.data, "train.jsonl"))
    test = load(os.path.join(args.data, "test.jsonl"))[: args.eval_samples]
    chars = sorted({c for p, a in train + test for c in p + a} | {"\x02", "\x03"})
    index = {c: i for i, c in enumerate(chars)}
    bos, eos = index["\x02"], index["\x03"]  # separates prompt from answer, ends the answer
    encode = lambda s: [index[c] for c in s]
    context = max(len(p) + len(a) for p, a in train + test) + 3
    model = Gpt(len(chars), context, args.d, args.layers, args.heads)
    params = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    print(f"# {len(train)} train, {len(test)} test, vocab {len(chars)}, context {context}, {params} parameters, "
          f"threads {torch.get_num_threads()}, batch {args.batch}, lr {args.lr}, load {os.getloadavg()[0]:.1f}", flush=True)

    def batch(rows):
        seqs = [encode(p) + [bos] + encode(a) + [eos] for p, a in rows]
        width = max(map(len, seqs))
        ids = torch.full((len(rows), width), eos, dtype=torch.long)
        targets = torch.full((len(rows), width), -100, dtype=torch.long)
        for i, ((p, _), s) in enumerate(zip(rows, seqs)):
            ids[i, : len(s)] = torch.tensor(s)
            answer_from = len(p) + 1  # the first answer character follows the separator
            targets[i, answer_from - 1: len(s) - 1] = torch.tensor(s[answer_from:])
        return ids, targets

    @torch.no_grad()
    def exact_match():
        model.eval()
        right = 0
        for p, a in test:
            ids = encode(p) + [bos]
            out = []
            for _ in range(60):
                nxt = int(model(torch.tensor([ids[-context:]]))[0, -1].argmax())
                if nxt == eos:
                    break
                ids.append(nxt)
                out.append(chars[nxt])
            right += final_number("".join(out)) == final_number(a)
        model.train()
        return right / len(test)

    start, step, tokens = time.time(), 0, 0
    generator = torch.Generator().manual_seed(2)
    while time.time() - start < args.minutes * 60:
        picks = torch.randint(len(train), (args.batch,), generator=generator).tolist()
        ids, targets = batch([train[i] for i in picks])
        lr = args.lr * min(1.0, (step + 1) / 100)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = F.cross_entropy(model(ids).reshape(-1, len(chars)), targets.reshape(-1), ignore_index=-100)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        tokens += ids.numel()
        if step % 25 == 0:
            elapsed = time.time() - start
            print(f"step {step} min {elapsed / 60:.1f} loss {loss.item():.4f} tokens/s {tokens / elapsed:.0f} "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)
        if step % args.eval_every == 0:
            elapsed = time.time() - start
            print(f"step {step} min {elapsed / 60:.1f} loss {loss.item():.4f} tokens/s {tokens / elapsed:.0f} "
                  f"exact_match {exact_match():.3f} load {os.getloadavg()[0]:.1f}", flush=True)
    elapsed = time.time() - start
    print(f"final step {step} min {elapsed / 60:.1f} loss {loss.item():.4f} exact_match {exact_match():.3f}", flush=True)


if __name__ == "__main__":
    main()
