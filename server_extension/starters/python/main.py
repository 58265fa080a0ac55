"""A Python starter: edit me, then run `python main.py` in a terminal."""


def greeting(name: str) -> str:
    return f"Hello, {name}!"


if __name__ == "__main__":
    print(greeting("Code Pilot"))
