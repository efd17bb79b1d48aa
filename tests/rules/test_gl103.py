"""GL103: recurrent models trained without clipping."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gradlint.config import Settings
from gradlint.engine import lint_paths
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


# --- issue 16, class 7: through names, list sums, star imports and sibling modules ---------------

THROUGH_NAMES = {
    "qmix_list_sum_attribute": """
        class RNNAgent(nn.Module):
            def __init__(self, input_shape, hidden_dim, n_actions):
                super().__init__()
                self.fc1 = nn.Linear(input_shape, hidden_dim)
                self.rnn = nn.GRUCell(hidden_dim, hidden_dim)
                self.fc2 = nn.Linear(hidden_dim, n_actions)

        class QMixer(nn.Module):
            def __init__(self, n_agents, state_dim):
                super().__init__()
                self.hyper_w = nn.Linear(state_dim, n_agents)

        class QLearner:
            def __init__(self, args):
                self.agent = RNNAgent(10, 64, 5)
                self.mixer = QMixer(3, 20)
                self.params = list(self.agent.parameters())
                self.params += list(self.mixer.parameters())
                self.optimiser = torch.optim.RMSprop(params=self.params, lr=5e-4)

            def train(self, loss):
                self.optimiser.zero_grad()
                loss.backward()
                self.optimiser.step()  # <-
    """,
    "captioning_list_sum_name": """
        class DecoderRNN(nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm = nn.LSTM(256, 512, 1, batch_first=True)

        decoder = DecoderRNN()
        encoder = nn.Linear(2048, 256)
        params = list(decoder.parameters()) + list(encoder.parameters())
        optimizer = torch.optim.Adam(params, lr=1e-3)
        for images, captions in loader:
            loss = criterion(decoder(encoder(images)), captions)
            loss.backward()
            optimizer.step()  # <-
    """,
}


@pytest.mark.parametrize("name", sorted(THROUGH_NAMES))
def test_recurrent_models_are_seen_through_names_and_list_sums(name: str) -> None:
    code = HEADER + textwrap.dedent(THROUGH_NAMES[name])
    [diagnostic] = lint(code, select="GL1")
    assert (diagnostic.code, diagnostic.line) == ("GL103", _expected(code)[0])
    assert diagnostic.severity.value == "warning"  # gated cells


def test_a_list_sum_of_plain_models_stays_gl101() -> None:
    code = HEADER + textwrap.dedent(THROUGH_NAMES["captioning_list_sum_name"]).replace(
        "nn.LSTM(256, 512, 1, batch_first=True)", "nn.Linear(256, 512)")
    assert [d.code for d in lint(code, select="GL1")] == ["GL101"]


VALUE_NETWORKS = """\
import torch.nn as nn


class QNetworkBase(nn.Module):
    def __init__(self, state_dim):
        super().__init__()
        self.state_dim = state_dim


class QNetworkLSTM(QNetworkBase):
    def __init__(self, state_dim, hidden_dim):
        super().__init__(state_dim)
        self.linear1 = nn.Linear(state_dim, hidden_dim)
        self.lstm1 = nn.LSTM(hidden_dim, hidden_dim)


class QNetwork(QNetworkBase):
    def __init__(self, state_dim, hidden_dim):
        super().__init__(state_dim)
        self.linear1 = nn.Linear(state_dim, hidden_dim)
"""

STAR_TRAIN = """\
import torch
import torch.optim as optim
from common.value_networks import *


class Trainer:
    def __init__(self):
        self.soft_q_net1 = {model}(8, 64)
        self.soft_q_optimizer1 = optim.Adam(self.soft_q_net1.parameters(), lr=3e-4)

    def update(self, q_value_loss1):
        self.soft_q_optimizer1.zero_grad()
        q_value_loss1.backward()
        self.soft_q_optimizer1.step()
"""


def _star_project(tmp_path: Path, model: str) -> list:
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "__init__.py").write_text("")
    (tmp_path / "common" / "value_networks.py").write_text(VALUE_NETWORKS)
    (tmp_path / "sac.py").write_text(STAR_TRAIN.format(model=model))
    return lint_paths([str(tmp_path / "sac.py")], Settings(select=("GL1",), root=str(tmp_path)), jobs=1)[0].diagnostics


def test_a_recurrent_class_of_a_star_imported_sibling_module(tmp_path: Path) -> None:
    [diagnostic] = _star_project(tmp_path, "QNetworkLSTM")
    assert (diagnostic.code, diagnostic.line, diagnostic.severity.value) == ("GL103", 14, "warning")
    assert "nn.LSTM in QNetworkLSTM (common/value_networks.py)" in diagnostic.message
    assert diagnostic.subject == "QNetworkLSTM"  # the model `check --verify` matches the verifier's report on


def test_a_plain_class_of_a_star_imported_sibling_module_stays_gl101(tmp_path: Path) -> None:
    [diagnostic] = _star_project(tmp_path, "QNetwork")
    assert diagnostic.code == "GL101" and diagnostic.subject == "QNetwork"


SIBLING_DECODER = """\
import torch.nn as nn


class DecoderRNN(nn.Module):
    def __init__(self, embed_size, hidden_size):
        super().__init__()
        self.embed = nn.Embedding(100, embed_size)
        self.lstm = nn.LSTM(embed_size, hidden_size, 1, batch_first=True)
"""


def test_a_recurrent_class_imported_by_name_from_a_sibling_module(tmp_path: Path) -> None:
    (tmp_path / "model.py").write_text(SIBLING_DECODER)
    (tmp_path / "train.py").write_text(
        "import torch\nfrom model import DecoderRNN\n\ndecoder = DecoderRNN(256, 512)\n"
        "params = list(decoder.parameters())\noptimizer = torch.optim.Adam(params)\n"
        "for x in loader:\n    loss = decoder(x).sum()\n    loss.backward()\n    optimizer.step()\n")
    [diagnostic] = lint_paths([str(tmp_path / "train.py")], Settings(select=("GL1",), root=str(tmp_path)),
                              jobs=1)[0].diagnostics
    assert diagnostic.code == "GL103" and "nn.LSTM in DecoderRNN (model.py)" in diagnostic.message


# --- the message and the severity follow what the recurrence is ---------------------------------

SEVERITY = {
    "class_named_rnn_around_an_lstm": ("""
        class RNN(nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm = nn.LSTM(28, 128, 2, batch_first=True)

        model = RNN()
        optimizer = torch.optim.Adam(model.parameters())
        for x in loader:
            model(x).sum().backward()
            optimizer.step()
    """, "warning", "nn.LSTM in RNN"),
    "vanilla_tanh_rnn": ("""
        class RNN(nn.Module):
            def __init__(self):
                super().__init__()
                self.rnn = nn.RNN(1, 32, batch_first=True)

        model = RNN()
        optimizer = torch.optim.Adam(model.parameters())
        for x in loader:
            model(x).sum().backward()
            optimizer.step()
    """, "error", "nn.RNN in RNN"),
    "gru_module": ("""
        model = nn.GRU(32, 64)
        optimizer = torch.optim.Adam(model.parameters())
        for x in loader:
            model(x)[0].sum().backward()
            optimizer.step()
    """, "warning", "nn.GRU"),
    "hidden_state_fed_back_by_the_training_loop": ("""
        class RNN(nn.Module):
            def __init__(self, n_in, n_hidden, n_out):
                super().__init__()
                self.i2h = nn.Linear(n_in + n_hidden, n_hidden)
                self.i2o = nn.Linear(n_in + n_hidden, n_out)

            def forward(self, x, hidden):
                combined = torch.cat((x, hidden), 1)
                return self.i2o(combined), self.i2h(combined)

        rnn = RNN(57, 128, 18)
        optimizer = torch.optim.SGD(rnn.parameters(), lr=0.005)

        def train(category, line):
            hidden = torch.zeros(1, 128)
            optimizer.zero_grad()
            for i in range(line.size(0)):
                output, hidden = rnn(line[i], hidden)
            loss = criterion(output, category)
            loss.backward()
            optimizer.step()
    """, "error", "a hand-written recurrence: `hidden` fed back into `rnn` in a loop"),
}


@pytest.mark.parametrize("name", sorted(SEVERITY))
def test_gl103_severity_and_message_follow_the_recurrence(name: str) -> None:
    snippet, severity, described = SEVERITY[name]
    [diagnostic] = lint(HEADER + textwrap.dedent(snippet), select="GL1")
    assert diagnostic.code == "GL103"
    assert diagnostic.severity.value == severity
    assert f"({described}" in diagnostic.message, diagnostic.message
    assert "(nn.RNN)" not in diagnostic.message


NOT_FED_BACK = {
    "initial_state_not_reassigned": """
        model = nn.Linear(8, 8)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for x in loader:
            out, aux = model(x, h0)
            out.sum().backward()
            optimizer.step()
    """,
    "layers_applied_in_a_loop": """
        model = nn.Linear(8, 8)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for x in loader:
            for _ in range(3):
                x = model(x)
            x.sum().backward()
            optimizer.step()
    """,
}


@pytest.mark.parametrize("name", sorted(NOT_FED_BACK))
def test_a_model_called_in_a_loop_without_its_state_fed_back_is_not_recurrent(name: str) -> None:
    assert [d.code for d in lint(HEADER + textwrap.dedent(NOT_FED_BACK[name]), select="GL1")] == ["GL101"]


def test_a_one_off_recurrent_demo_step_is_info() -> None:
    code = HEADER + "model = nn.LSTM(4, 8)\noptimizer = torch.optim.Adam(model.parameters())\n" \
                    "model(x)[0].sum().backward()\noptimizer.step()\n"
    [diagnostic] = lint(code, select="GL1")
    assert (diagnostic.code, diagnostic.severity.value) == ("GL103", "info")
    assert "marginal: a one-off step at module level" in diagnostic.message


def test_the_rationale_says_why_gated_cells_are_a_warning() -> None:
    from gradlint.rules import RULES_BY_CODE

    rationale = RULES_BY_CODE["GL103"].rationale
    assert "error for a vanilla (tanh/ReLU) RNN or a hand-written recurrence" in rationale
    assert "warning for gated cells (LSTM/GRU)" in rationale


SHORT = """
    sequence_length = {length}
    {other}
    class RNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(28, 128, 2, batch_first=True)

    model = RNN()
    optimizer = torch.optim.Adam(model.parameters())
    for images, labels in loader:
        images = images.reshape(-1, sequence_length, 28)
        loss = criterion(model(images), labels)
        loss.backward()
        optimizer.step()
"""


@pytest.mark.parametrize(("length", "other", "severity"), [
    (28, "", "info"),  # every BPTT length the file sets is short
    (28, "bptt = 70", "warning"),  # one long unroll is enough
    (100, "", "warning"),
    (28, "max_length = 500", "info"),  # a cap on inputs is not the unroll
])
def test_short_sequences_make_gl103_info(length: int, other: str, severity: str) -> None:
    [diagnostic] = lint(HEADER + textwrap.dedent(SHORT.format(length=length, other=other)), select="GL1")
    assert (diagnostic.code, diagnostic.severity.value) == ("GL103", severity)
    if severity == "info":
        assert f"marginal: short sequences, `sequence_length = {length}`" in diagnostic.message


def test_a_cap_named_max_length_is_not_a_short_sequence() -> None:
    code = HEADER + textwrap.dedent(SHORT.format(length=28, other="")).replace("sequence_length", "max_length")
    [diagnostic] = lint(code, select="GL1")
    assert diagnostic.severity.value == "warning"
