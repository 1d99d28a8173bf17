"""Telling the user's scrolling apart, for a view that follows its end (the log, the chat).

A view that follows new lines must pause when the *user* scrolls up and resume when the user
scrolls back to the last line; ``scroll_y`` also moves on a resize, when old lines are pruned
or when the view re-measures, and those must not pause it. :class:`UserScroll` hooks the
wheel and the scrollbar drag (keys are the view's own actions) and calls the view's
``_user_up`` / ``_user_down``, which decide what pausing and resuming mean there.
"""

from __future__ import annotations


class UserScroll:
    """Mixin, before the scrolling widget class (``class V(UserScroll, ScrollView)``).

    The view defines ``_user_up()`` (the user scrolled up: pause) and ``_user_down()`` (the
    user scrolled down: resume when :attr:`at_end_target`).
    """

    def _user_up(self) -> None:
        raise NotImplementedError

    def _user_down(self) -> None:
        raise NotImplementedError

    @property
    def at_end_target(self) -> bool:
        """The scroll in progress ends on the last line."""
        return self.scroll_target_y >= self.max_scroll_y

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        if self.is_vertical_scrollbar_grabbed:
            if new < old:
                self._user_up()
            elif new >= self.max_scroll_y:
                self._user_down()

    def _on_mouse_scroll_up(self, event) -> None:
        self._user_up()
        super()._on_mouse_scroll_up(event)

    def _on_mouse_scroll_down(self, event) -> None:
        super()._on_mouse_scroll_down(event)
        self._user_down()
