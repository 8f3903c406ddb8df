"""What every model trained epoch by epoch shares: ``partial_fit``, the epoch loop with
its loss history, validation, early stopping, callback and progress bar."""
import time

import numpy as np

from fastrec._checks import check_positive_int
from fastrec.data import as_interactions


class EpochTraining:
    """Mixin for a ``Recommender`` with ``_initialise(data)`` (fresh parameters, zeroing
    ``epochs_done_`` and ``loss_history_``) and ``_train(data, n_epochs)`` (which calls
    ``_run_epochs``), and the parameters ``validation``, ``early_stopping``,
    ``callback`` and ``show_progress``."""

    def _fit(self, data):
        self._initialise(data)
        self._train(data, self.n_epochs)

    def partial_fit(self, data, n_epochs=1):
        """Train ``n_epochs`` more epochs on ``data`` (same ids as before), keeping the
        parameters (and the optimiser's state); on an unfitted model this starts from a
        fresh initialisation."""
        data = as_interactions(data)
        self._check_params()
        n_epochs = check_positive_int(n_epochs, "n_epochs", minimum=0)
        if not hasattr(self, "interactions_"):
            self.interactions_ = data
            self._initialise(data)
        elif not data.same_ids(self.interactions_):
            raise ValueError("partial_fit needs data with the ids of the fitted data")
        self._train(data, n_epochs)
        self.interactions_ = data
        return self

    def _check_training_params(self):
        check_positive_int(self.early_stopping, "early_stopping", allow_none=True)
        if self.callback is not None and not callable(self.callback):
            raise TypeError("callback must be callable: callback(epoch, elapsed, loss)")
        if self.early_stopping is not None and self.validation is None:
            raise ValueError("early_stopping needs validation data")

    @property
    def history_(self):
        """Training and validation loss per epoch: ``{"train": [...], "validation": [...]}``."""
        return {"train": self.loss_history_[:, 0].tolist(), "validation": self.loss_history_[:, 1].tolist()}

    def _checked_validation(self, data):
        if self.validation is None:
            return None
        validation = as_interactions(self.validation)
        if not validation.same_ids(data):
            raise ValueError("validation must use the training data's user and item ids "
                             "(split one Interactions with fastrec.model_selection)")
        return validation

    def _run_epochs(self, data, n_epochs, run_epoch, snapshot, restore):
        """Call ``run_epoch(epoch) -> train loss`` ``n_epochs`` times, recording the losses
        (and ``_validation_loss``), calling back, stopping early; with early stopping the
        best epoch's ``snapshot()`` is given back to ``restore``."""
        validation = self._checked_validation(data)
        best, best_loss, stale = None, np.inf, 0
        bar = _progress(n_epochs, self.show_progress)
        start = time.perf_counter()
        history = [self.loss_history_]
        for _ in range(n_epochs):
            epoch = int(self.epochs_done_)
            train_loss = run_epoch(epoch)
            self.epochs_done_ = np.array(epoch + 1)
            val_loss = self._validation_loss(validation) if validation is not None else np.nan
            history.append(np.array([[train_loss, val_loss]]))
            if self.callback is not None:
                self.callback(epoch + 1, time.perf_counter() - start, train_loss)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{train_loss:.4f}")
            if self.early_stopping is not None:
                if val_loss < best_loss:
                    best_loss, stale, best = val_loss, 0, snapshot()
                else:
                    stale += 1
                    if stale >= self.early_stopping:
                        break
        if bar is not None:
            bar.close()
        if best is not None:
            restore(best)
        self.loss_history_ = np.concatenate(history)


def _progress(total, show):
    if not show:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc="epochs", unit="epoch", leave=False)
