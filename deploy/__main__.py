"""`python -m deploy init`: the one task a repository needs before it has a tasks.py of its own."""

from invoke import Collection, Program

from .tasks.init import init

program = Program(namespace=Collection(init), name="deploy", binary="python -m deploy")

if __name__ == "__main__":
    program.run()
