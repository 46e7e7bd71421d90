"""Recurrent cells, one per file, each written from its textbook equations.

Contract (see :class:`rnnlab.cells.base.RecurrentCell`):
``forward(x_t, state) -> (h_t, state)`` and ``init_state(batch, device)``.
"""

from rnnlab.cells.base import RecurrentCell
from rnnlab.cells.gru import GRUCell
from rnnlab.cells.lstm import LSTMCell
from rnnlab.cells.rnn import RNNCell

__all__ = ["GRUCell", "LSTMCell", "RNNCell", "RecurrentCell"]
