"""Neural collaborative filtering on MovieLens 100k (implicit: every rating is a click).

Speed: one NeuMF training epoch (factors 16, tower (64, 32, 16), batch 256, 4 negatives,
Adam) with fastrec's Numba kernel, and with the same network in a plain PyTorch CPU loop
(the loop a user would otherwise write), on the same samples, when torch is installed.

Accuracy: the paper's protocol (leave the latest interaction out, rank it among 100
sampled negatives; HR@10, NDCG@10) for GMF, MLP, NeuMF and fastrec's BPR and logistic
MF; the figures are printed and kept in ``extra_info``.

The PyTorch loop runs first: once Numba's OpenMP thread pool has run in a process, a
PyTorch imported afterwards with 2 threads shares that OpenMP runtime and runs about 12x
slower on this machine (import torch first, or give it one thread, to avoid this).

Run: pytest benchmarks/bench_neural.py --benchmark-only --benchmark-columns=min,mean,rounds -s
"""
import numpy as np
import pytest

import fastrec
from fastrec.evaluation import evaluate_sampled
from fastrec.model_selection import leave_k_out

FACTORS, LAYERS, BATCH, NEGATIVES = 16, (64, 32, 16), 256, 4
EPOCH_GROUP = "NeuMF: one epoch on ml-100k (500k samples, batch 256), 2 threads"


@pytest.fixture(scope="module")
def clicks(ml100k_path):
    return fastrec.datasets.load_movielens(ml100k_path).to_implicit()


def _fitted_neumf(data, n_epochs, **params):
    model = fastrec.NeuralCF("neumf", FACTORS, LAYERS, n_epochs=n_epochs, batch_size=BATCH,
                             neg_samples=NEGATIVES, random_state=0, num_threads=2, **params)
    return model.fit(data)


class _TorchNeuMF:
    """The paper's NeuMF in plain PyTorch: nn.Embedding tables, a ReLU tower, one output."""

    def __init__(self, torch, n_users, n_items):
        nn = torch.nn
        half = LAYERS[0] // 2

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.user_gmf = nn.Embedding(n_users, FACTORS)
                self.item_gmf = nn.Embedding(n_items, FACTORS)
                self.user_mlp = nn.Embedding(n_users, half)
                self.item_mlp = nn.Embedding(n_items, half)
                tower = []
                for a, b in zip(LAYERS[:-1], LAYERS[1:], strict=True):
                    tower += [nn.Linear(a, b), nn.ReLU()]
                self.tower = nn.Sequential(*tower)
                self.out = nn.Linear(FACTORS + LAYERS[-1], 1)
                for table in (self.user_gmf, self.item_gmf, self.user_mlp, self.item_mlp):
                    nn.init.normal_(table.weight, std=0.01)

            def forward(self, u, i):
                gmf = self.user_gmf(u) * self.item_gmf(i)
                mlp = self.tower(torch.cat([self.user_mlp(u), self.item_mlp(i)], dim=1))
                return self.out(torch.cat([gmf, mlp], dim=1)).squeeze(1)

        torch.manual_seed(0)
        self.torch = torch
        self.net = Net()
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=0.001)
        self.loss = nn.BCEWithLogitsLoss()

    def epoch(self, users, items, labels):
        total = 0.0
        for s in range(0, users.shape[0], BATCH):
            self.optimizer.zero_grad()
            loss = self.loss(self.net(users[s:s + BATCH], items[s:s + BATCH]), labels[s:s + BATCH])
            loss.backward()
            self.optimizer.step()
            total += loss.item()
        return total


def test_pytorch_neumf_epoch(benchmark, clicks):
    torch = pytest.importorskip("torch")
    from fastrec._kernels.ncf_nb import epoch_samples

    torch.set_num_threads(2)
    benchmark.group = EPOCH_GROUP
    csr = clicks.csr
    users, items, labels = epoch_samples(csr.indptr, csr.indices, clicks.values, clicks.n_items,
                                         NEGATIVES, True, 0, 0)
    model = _TorchNeuMF(torch, clicks.n_users, clicks.n_items)
    args = (torch.from_numpy(users), torch.from_numpy(items), torch.from_numpy(labels.astype(np.float32)))
    benchmark.extra_info["torch"] = torch.__version__
    benchmark.pedantic(model.epoch, args=args, rounds=3, warmup_rounds=0)


def test_fastrec_neumf_epoch(benchmark, clicks):
    benchmark.group = EPOCH_GROUP
    model = _fitted_neumf(clicks, 1)  # compiles the kernel
    benchmark.pedantic(model.partial_fit, args=(clicks, 1), rounds=5, warmup_rounds=1)
    assert np.isfinite(model.history_["train"]).all()


def test_fastrec_neumf_epoch_1thread(benchmark, clicks):
    benchmark.group = EPOCH_GROUP
    model = _fitted_neumf(clicks, 1)
    model.num_threads = 1
    benchmark.pedantic(model.partial_fit, args=(clicks, 1), rounds=3, warmup_rounds=1)


MODELS = {
    "GMF": lambda: fastrec.NeuralCF("gmf", FACTORS, n_epochs=20, random_state=0),
    "MLP": lambda: fastrec.NeuralCF("mlp", FACTORS, LAYERS, n_epochs=20, random_state=0),
    "NeuMF": lambda: fastrec.NeuralCF("neumf", FACTORS, LAYERS, n_epochs=20, random_state=0),
    "MF bpr": lambda: fastrec.MatrixFactorization(64, 30, lr=0.05, reg=0.005, loss="bpr",
                                                  optimizer="adagrad", neg_samples=4, random_state=0),
    "MF logistic": lambda: fastrec.MatrixFactorization(64, 30, lr=0.05, reg=0.005, loss="logistic",
                                                       optimizer="adagrad", neg_samples=4, random_state=0),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_protocol_accuracy(benchmark, clicks, name):
    """HR@10 / NDCG@10 under the paper's protocol; the benchmark times fit + scoring."""
    train, test = leave_k_out(clicks, 1, by="time", random_state=0)
    benchmark.group = "NCF protocol on ml-100k: fit + HR@10/NDCG@10 (100 negatives)"
    result = benchmark.pedantic(evaluate_sampled, args=(MODELS[name](), train, test),
                                kwargs={"k": 10, "random_state": 0}, rounds=1)
    benchmark.extra_info.update({"hr@10": result["hit_rate@10"], "ndcg@10": result["ndcg@10"]})
    print(f"\n{name}: HR@10 {result['hit_rate@10']:.4f}  NDCG@10 {result['ndcg@10']:.4f}  "
          f"fit {result['fit_seconds']:.2f} s")
    assert 0.0 < result["hit_rate@10"] <= 1.0
