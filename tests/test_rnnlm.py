"""tinylm.models.RNNLM: PyTorch word_language_model names, the same numbers as the same model
in PyTorch, truncated BPTT state, tied weights, generation and bad input."""
import numpy as np
import pytest

from tinylm import IndexRangeError, ShapeError, TinyLMError
from tinylm.models import RNNLM


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_names_and_shapes_follow_the_pytorch_example(cell):
    m = RNNLM(20, 6, 6, num_layers=2, cell=cell, seed=0)
    names = list(m.state_dict())
    assert names[0] == "encoder.weight" and names[-2:] == ["decoder.weight", "decoder.bias"]
    assert "rnn.weight_hh_l1" in names


def test_tied_weights_share_one_matrix_and_need_equal_sizes():
    m = RNNLM(20, 6, 6, tie_weights=True, seed=0)
    assert m.decoder.weight is m.encoder.weight
    assert m.num_parameters() == RNNLM(20, 6, 6, seed=0).num_parameters() - 20 * 6
    with pytest.raises(TinyLMError, match="embed_size == hidden_size"):
        RNNLM(20, 6, 8, tie_weights=True)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_same_as_pytorch_with_the_same_weights(cell, rng):
    torch = pytest.importorskip("torch")
    ours = RNNLM(15, 5, 7, num_layers=2, cell=cell, seed=1)
    ours.to(np.float64)

    class Theirs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = torch.nn.Embedding(15, 5)
            self.rnn = getattr(torch.nn, cell.upper())(5, 7, 2, batch_first=True)
            self.decoder = torch.nn.Linear(7, 15)

        def forward(self, x):
            return self.decoder(self.rnn(self.encoder(x))[0])
    theirs = Theirs().double()
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    idx, targets = rng.integers(0, 15, (3, 6)), rng.integers(0, 15, (3, 6))
    logits, loss, _ = ours(idx, targets)
    loss.backward()
    t_logits = theirs(torch.tensor(idx))
    t_loss = torch.nn.functional.cross_entropy(t_logits.reshape(-1, 15),
                                               torch.tensor(targets).reshape(-1))
    t_loss.backward()
    np.testing.assert_allclose(logits.data, t_logits.detach().numpy(), atol=1e-10)
    grads = dict(ours.named_parameters())
    for name, p in theirs.named_parameters():
        np.testing.assert_allclose(grads[name].grad, p.grad.numpy(), atol=1e-10, err_msg=name)


def test_state_carries_over_chunks_without_a_graph(rng):
    m = RNNLM(10, 4, 4, cell="lstm", seed=0)
    idx = rng.integers(0, 10, (2, 8))
    whole, _, _ = m(idx)
    first, _, state = m(idx[:, :5])
    second, _, _ = m(idx[:, 5:], state=state)
    np.testing.assert_allclose(np.concatenate([first.data, second.data], 1), whole.data,
                               atol=1e-6)
    assert all(isinstance(s, np.ndarray) for s in state)


def test_learns_a_cycle_and_generates_it():
    from tinylm import optim
    m = RNNLM(5, 8, 16, cell="gru", seed=0)
    opt = optim.Adam(m.parameters(), lr=3e-2)
    seq = np.tile(np.arange(5), 5)[None]
    for _ in range(80):
        _, loss, _ = m(seq[:, :-1], seq[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
    np.testing.assert_array_equal(m.generate(np.array([[3]]), 6, temperature=0),
                                  [[3, 4, 0, 1, 2, 3, 4]])


def test_bad_input():
    with pytest.raises(TinyLMError, match="cell must be one of"):
        RNNLM(5, 4, 4, cell="transformer")
    m = RNNLM(5, 4, 4, seed=0)
    with pytest.raises(IndexRangeError, match=r"\[0, 5\)"):
        m(np.array([[1, 5]]))
    with pytest.raises(ShapeError, match="integer token ids"):
        m(np.array([1, 2]))
