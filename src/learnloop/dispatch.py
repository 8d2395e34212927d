"""How a Learner holds its callbacks and runs an event on them: `CallbackHost`, the base class of `Learner`.

The dispatch is resolved once per change of callbacks (a tuple of bound methods per event), not per batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import contextmanager

from .callbacks.core import CANCELS, EVENTS, Callback, as_callback, warn_unknown_events
from .distributed import is_main

__all__ = ["CallbackHost"]


class CallbackHost:
    """`cbs`, the callbacks in the order they were added; `add_cbs`/`remove_cbs`/`added_cbs` change them, and
    calling the host with an event's name runs that event on each, in `order` (then insertion order)."""

    cbs: list[Callback]

    def add_cbs(self, cbs: Iterable) -> list[Callback]:
        """Add callbacks (learnloop's, or objects a registered adapter wraps: Keras's); return them as Callbacks."""
        added = [as_callback(cb) for cb in cbs]
        for cb in added:
            warn_unknown_events(cb)
            cb.learn = self
            setattr(self, cb.name, cb)
            self.cbs.append(cb)
        self._resolve_dispatch()
        return added

    def remove_cbs(self, cbs: Iterable[Callback]) -> Callable[[], None]:
        """Remove callbacks added earlier; returns a function that puts them back in their places."""
        places = sorted((self.cbs.index(cb), cb) for cb in cbs)
        for _, cb in places:
            self.cbs.remove(cb)
            if getattr(self, cb.name, None) is cb:
                delattr(self, cb.name)
        self._resolve_dispatch()

        def put_back() -> None:
            for i, cb in places:  # ascending: each lands where it was, the earlier ones back in place
                self.cbs.insert(i, cb)
                setattr(self, cb.name, cb)
            self._resolve_dispatch()

        return put_back

    @contextmanager
    def added_cbs(self, cbs: Iterable | None):
        """Add callbacks for the duration of a `with` block."""
        added = self.add_cbs(cbs or [])
        try:
            yield added
        finally:
            self.remove_cbs(added)

    def _resolve_dispatch(self) -> None:
        # Once per change of callbacks, not per batch: a tuple of bound methods per event.
        ordered = sorted(self.cbs, key=lambda cb: cb.order)  # stable: insertion order breaks ties
        ordered = [cb for cb in ordered if not cb.main_only or is_main()]  # under torchrun, I/O on rank 0 only
        self._dispatch = {e: tuple(getattr(cb, e) for cb in ordered if hasattr(type(cb), e)) for e in EVENTS}

    def __call__(self, event: str) -> None:
        """Run `event` on every callback that has it, in order."""
        method = None
        try:
            for method in self._dispatch[event]:
                method()
        except CANCELS:
            raise
        except Exception as e:
            if method is not None and hasattr(e, "add_note"):
                e.add_note(f"raised in callback {type(method.__self__).__name__}.{event}")
            raise
