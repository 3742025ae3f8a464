"""Terminal sessions (open_terminal) and streamed stdin (stdin=subprocess.PIPE),
driven as an editor's terminal would: a busybox shell on the pseudo-terminal,
keystrokes in, what it prints out."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import time
import unittest

from support import HelperTestCase, processes_with_args, unique_sleep_arg, wait_until

import bwrapd

ALL_BYTES = bytes(range(256))


class Screen:
    """What a terminal printed, read as far as each expected text."""

    def __init__(self) -> None:
        self.seen = b""
        self.consumed = 0

    def find(self, expected: str):
        """What was printed up to ``expected`` since the last find, or None."""
        at = self.seen.find(expected.encode(), self.consumed)
        if at < 0:
            return None
        printed = self.seen[self.consumed:at + len(expected.encode())]
        self.consumed = at + len(expected.encode())
        return printed.decode(errors="replace")

    def rest(self) -> bytes:
        return self.seen[self.consumed:]


class TerminalTest(HelperTestCase):
    def open_shell(self, **options) -> bwrapd.Terminal:
        terminal = self.helper.open_terminal(["sh"], root=self.rootfs, timeout=120, **options)
        self.addCleanup(terminal.__exit__)
        return terminal

    def expect(self, chunks, screen: Screen, text: str) -> str:
        """Reads ``chunks`` (of Terminal.chunks) until ``text`` was printed."""
        deadline = time.monotonic() + 30
        while (printed := screen.find(text)) is None:
            chunk = next(chunks, None)
            if chunk is None:
                self.fail("the run ended without %r; it printed %r" % (text, screen.rest()))
            if time.monotonic() > deadline:
                self.fail("no %r on the terminal; it printed %r" % (text, screen.rest()))
            screen.seen += chunk
        return printed

    def test_an_interactive_shell(self):
        terminal = self.open_shell(rows=24, cols=80)
        screen, chunks = Screen(), terminal.chunks(timeout=30)
        self.expect(chunks, screen, "# ")
        self.assertEqual(terminal.write("echo typed-$((6 * 7))\n"), len("echo typed-$((6 * 7))\n"))
        self.expect(chunks, screen, "typed-42\r\n")

        terminal.write("stty size; tty\n")
        self.expect(chunks, screen, "24 80\r\n")
        tty = self.expect(chunks, screen, "\r\n")
        self.assertRegex(tty, r"^(/dev/console|/dev/pts/\d+)\r\n$")
        terminal.write("stat -c major=%t $(tty)\n")
        self.expect(chunks, screen, "major=88\r\n")  # 136: a Unix 98 pseudo-terminal

        self.assertTrue(terminal.resize(40, 132))
        terminal.write("stty size\n")
        self.expect(chunks, screen, "40 132\r\n")

        arg = unique_sleep_arg(100)
        terminal.write("sleep %s; echo after-sleep\n" % arg)
        self.expect(chunks, screen, "after-sleep\r\n")  # the echo of the line: the shell read it
        # and the job runs (a Ctrl-C before it would reach the shell, and sleep 100 go on)
        self.assertTrue(wait_until(lambda: processes_with_args("sleep", arg), 30), "the job never ran")
        started = time.monotonic()
        terminal.write("\x03")  # Ctrl-C: SIGINT to the foreground job
        terminal.write("echo shell-alive\n")
        self.assertIn("^C", self.expect(chunks, screen, "shell-alive\r\n"))
        self.assertLess(time.monotonic() - started, 30)

        terminal.write("exit 3\n")
        result = terminal.wait(timeout=60)
        self.assertExited(result, 3)
        self.assertIsNone(result.stdout)
        self.assertIsNone(result.stderr)
        self.assertFalse(terminal.resize(10, 10))  # the run is over
        self.assertEqual(terminal.write("late\n"), 0)
        self.assertIn(b"exit 3", b"".join(chunks))
        self.assertEqual(list(terminal), [])  # __iter__: the end, again

    def test_colours_and_every_byte_value_in_raw_mode(self):
        terminal = self.helper.open_terminal(
            ["sh", "-c", "echo term=$TERM; printf '\\033[31mred\\033[0m\\n'; stty raw -echo; echo ready; head -c 256 | od -An -v -tx1"],
            root=self.rootfs, timeout=120, term="vt100")
        screen, chunks = Screen(), terminal.chunks(timeout=30)
        self.expect(chunks, screen, "term=vt100\r\n")
        self.expect(chunks, screen, "\x1b[31mred\x1b[0m\r\n")
        self.expect(chunks, screen, "ready")
        self.assertEqual(terminal.write(ALL_BYTES), 256)
        result = terminal.wait(timeout=60)
        self.assertExited(result)
        screen.seen += b"".join(chunks)
        hex_dump = screen.rest().decode().split()
        self.assertEqual(hex_dump, ["%02x" % b for b in ALL_BYTES])

    def test_signal_and_terminate_reach_the_session(self):
        terminal = self.open_shell()
        screen, chunks = Screen(), terminal.chunks(timeout=30)
        self.expect(chunks, screen, "# ")
        arg = unique_sleep_arg(100)
        terminal.write("sleep %s; echo status=$?\n" % arg)
        self.expect(chunks, screen, "echo status=$?\r\n")
        # the job runs: a SIGTERM before it would go to the shell, which ignores it
        self.assertTrue(wait_until(lambda: processes_with_args("sleep", arg), 30), "the job never ran")
        self.assertTrue(terminal.signal("SIGTERM"))  # the foreground job, not the shell
        self.expect(chunks, screen, "status=143\r\n")
        self.assertTrue(terminal.terminate())
        self.assertEqual(terminal.wait(timeout=60).status, "signaled")

    def test_options_the_terminal_replaces_are_refused(self):
        for option in ("stdin", "stdout", "stderr", "terminal"):
            with self.subTest(option), self.assertRaisesRegex(TypeError, option):
                self.helper.open_terminal(["sh"], root=self.rootfs, **{option: "capture"})
        with self.assertRaises(ValueError):
            self.helper.open_terminal(["sh"], root=self.rootfs, rows=0)


class StreamedStdinTest(HelperTestCase):
    def test_cat_echoes_pieces_until_eof(self):
        sandbox = self.helper.start(["cat"], root=self.rootfs, stdin=subprocess.PIPE, timeout=60)
        self.assertIsNotNone(sandbox.stdin)
        self.assertEqual(sandbox.stdin.write("hello "), 6)
        self.assertEqual(sandbox.stdin.write(ALL_BYTES[:128]), 128)
        self.assertEqual(sandbox.stdin.write(ALL_BYTES[128:]), 128)
        sandbox.stdin.close()
        sandbox.stdin.close()  # again: nothing
        with self.assertRaises(ValueError):
            sandbox.stdin.write(b"late")
        result = sandbox.wait(timeout=60)
        self.assertExited(result)
        self.assertEqual(result.stdout, b"hello " + ALL_BYTES)

    def test_a_large_write_goes_in_pieces(self):
        data = ALL_BYTES * 1024  # 256 KiB: many sandbox/input requests
        sandbox = self.helper.start(["sh", "-c", "cat | md5sum"], root=self.rootfs, stdin=subprocess.PIPE,
                                    timeout=60, text=True)
        with sandbox.stdin as stdin:
            self.assertEqual(stdin.write(data), len(data))
        result = sandbox.wait(timeout=60)
        self.assertExited(result)
        self.assertEqual(result.stdout.split()[0], hashlib.md5(data).hexdigest())

    def test_a_command_that_stops_reading_takes_fewer_bytes(self):
        sandbox = self.helper.start(["head", "-c", "3"], root=self.rootfs, stdin=subprocess.PIPE, timeout=60)
        self.assertLess(sandbox.stdin.write(b"x" * (1 << 20)), 1 << 20)
        self.assertExited(sandbox.wait(timeout=60))
        sandbox.stdin.close()  # after the run: nothing

    def test_runs_without_a_stream_have_no_stdin(self):
        sandbox = self.helper.start(["true"], root=self.rootfs)
        self.assertIsNone(sandbox.stdin)
        sandbox.wait(timeout=60)


class AsyncTerminalTest(unittest.TestCase):
    def setUp(self) -> None:
        from support import make_rootfs, remove_tree
        self.rootfs = make_rootfs()
        self.addCleanup(remove_tree, self.rootfs)

    def test_shell_and_streamed_stdin(self):
        asyncio.run(self.session())

    async def session(self) -> None:
        async with bwrapd.AsyncHelper() as helper:
            terminal = await helper.open_terminal(["sh"], root=self.rootfs, rows=30, cols=100, timeout=120)
            screen, chunks = Screen(), terminal.chunks(timeout=30)

            async def expect(text: str) -> str:
                while (printed := screen.find(text)) is None:
                    screen.seen += await chunks.__anext__()
                return printed

            await expect("# ")
            await terminal.write("stty size\n")
            await expect("30 100\r\n")
            self.assertTrue(await terminal.resize(31, 101))
            await terminal.write("stty size; tty\n")
            await expect("31 101\r\n")
            arg = unique_sleep_arg(100)
            await terminal.write("sleep %s\n" % arg)
            await expect("sleep %s\r\n" % arg)
            for _ in range(600):  # the job runs (up to 30 s): a Ctrl-C before it would reach the shell
                if processes_with_args("sleep", arg):
                    break
                await asyncio.sleep(0.05)
            else:
                self.fail("the job never ran")
            await terminal.write("\x03echo alive\n")
            await expect("alive\r\n")
            await terminal.write("exit 3\n")
            rest = b"".join([chunk async for chunk in chunks])
            result = await terminal.wait(timeout=60)
            self.assertEqual((result.status, result.exit_code), ("exited", 3), result.describe())
            self.assertIn(b"exit 3", screen.rest() + rest)
            self.assertEqual([chunk async for chunk in terminal], [])  # __aiter__: the end, again

            sandbox = await helper.start(["cat"], root=self.rootfs, stdin=subprocess.PIPE, timeout=60)
            assert sandbox.stdin is not None
            self.assertEqual(await sandbox.stdin.write(ALL_BYTES[:100]), 100)
            self.assertEqual(await sandbox.stdin.write(ALL_BYTES[100:]), 156)
            await sandbox.stdin.close()
            result = await sandbox.wait(timeout=60)
            self.assertEqual(result.stdout, ALL_BYTES)


if __name__ == "__main__":
    unittest.main()
