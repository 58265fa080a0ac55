"""A Python starter: edit me, then press Run (or run `python main.py` in a terminal)."""


def greeting(name: str) -> str:
    return f"Hello, {name}!"


if __name__ == "__main__":
    # The Run panel is a terminal: what you type there is the answer.
    name = input("What is your name? ").strip()
    print(greeting(name or "Code Pilot"))
