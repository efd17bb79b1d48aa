"""GL103: recurrent models trained without clipping."""

from __future__ import annotations

import textwrap

import pytest

from tests.conftest import lint

HEADER = "import torch\nimport torch.nn as nn\n"

RECURRENT = {
    "lstm_module": """
        model = nn.LSTM(32, 64, num_layers=2)
        optimizer = torch.optim.Adam(model.parameters())
        loss.backward()
        optimizer.step()  # <-
    """,
    "class_with_gru": """
        class Policy(nn.Module):
            def __init__(self):
                super().__init__()
                self.core = nn.GRU(16, 32, batch_first=True)
                self.head = nn.Linear(32, 4)

        policy = Policy()
        opt = torch.optim.RMSprop(policy.parameters(), lr=5e-4)
        loss.backward()
        opt.step()  # <-
    """,
    "nested_model_classes": """
        class Encoder(nn.Module):
            def __init__(self):
                super().__init__()
                self.rnn = nn.RNNCell(8, 8)

        class Agent(nn.Module):
            def __init__(self):
                super().__init__()
                self.encoder = Encoder()

        class Learner:
            def __init__(self):
                self.agent = Agent()
                self.optimizer = torch.optim.Adam(self.agent.parameters())

            def update(self, loss):
                loss.backward()
                self.optimizer.step()  # <-
    """,
    "hand_written_recurrence": """
        class VanillaRNN(nn.Module):
            def __init__(self, n):
                super().__init__()
                self.W = nn.Parameter(torch.randn(n, n))
                self.U = nn.Linear(n, n)

            def forward(self, xs):
                h = torch.zeros(xs.shape[1], self.W.shape[0])
                for x in xs:
                    h = torch.tanh(h @ self.W + self.U(x))
                return h

        net = VanillaRNN(32)
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        loss.backward()
        opt.step()  # <-
    """,
    "optimizer_passed_to_the_training_function": """
        class CharLSTM(nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm = nn.LSTM(8, 16)

        def train_epoch(model, data, optimizer, clip=None):
            for x in data:
                loss = model(x).sum()
                loss.backward()
                optimizer.step()  # <-

        def main():
            model = CharLSTM().to("cuda")
            opt = torch.optim.SGD(model.parameters(), lr=20)
            train_epoch(model, [], optimizer=opt)
    """,
    "model_that_owns_its_optimizer": """
        class PPO(nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm = nn.LSTM(64, 32)
                self.optimizer = torch.optim.Adam(self.parameters(), lr=3e-4)

            def train_net(self, loss):
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()  # <-
    """,
    "imported_rnn_model": """
        import model as m
        net = m.RNNModel("LSTM", 100, 200, 200, 2)
        optimizer = torch.optim.SGD(net.parameters(), lr=20)
        loss.backward()
        optimizer.step()  # <-
    """,
}

NOT_RECURRENT = {
    "mlp": """
        model = nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 2))
        optimizer = torch.optim.Adam(model.parameters())
        loss.backward()
        optimizer.step()  # <-
    """,
    "loop_in_forward_that_is_not_a_recurrence": """
        class Deep(nn.Module):
            def __init__(self):
                super().__init__()
                self.layers = nn.ModuleList([nn.Linear(8, 8) for _ in range(4)])

            def forward(self, x):
                for layer in self.layers:
                    x = layer(x)
                return x

        net = Deep()
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        loss.backward()
        opt.step()  # <-
    """,
}


def _expected(code: str) -> list[int]:
    return [i + 1 for i, line in enumerate(code.splitlines()) if "# <-" in line]


@pytest.mark.parametrize("name", sorted(RECURRENT))
def test_recurrent_models_are_gl103(name: str) -> None:
    code = HEADER + textwrap.dedent(RECURRENT[name])
    assert [(d.code, d.line) for d in lint(code, select="GL1")] == [("GL103", n) for n in _expected(code)]


@pytest.mark.parametrize("name", sorted(NOT_RECURRENT))
def test_other_models_stay_gl101(name: str) -> None:
    code = HEADER + textwrap.dedent(NOT_RECURRENT[name])
    assert [(d.code, d.line) for d in lint(code, select="GL1")] == [("GL101", n) for n in _expected(code)]


@pytest.mark.parametrize("name", sorted(RECURRENT))
def test_clipped_recurrent_models_are_clean(name: str) -> None:
    code = HEADER + textwrap.dedent(RECURRENT[name]).replace(
        "loss.backward()", "loss.backward(); torch.nn.utils.clip_grad_norm_(params, 0.25)"
    )
    assert lint(code, select="GL1") == []


def test_reported_as_gl101_when_gl103_is_off() -> None:
    code = HEADER + textwrap.dedent(RECURRENT["lstm_module"])
    assert [d.code for d in lint(code, select="GL101")] == ["GL101"]
    assert [d.code for d in lint(code, select="GL103")] == ["GL103"]


def test_message_names_the_recurrent_module() -> None:
    [diagnostic] = lint(HEADER + textwrap.dedent(RECURRENT["nested_model_classes"]), select="GL1")
    assert "nn.RNNCell in Encoder" in diagnostic.message
    assert diagnostic.severity.value == "error"
