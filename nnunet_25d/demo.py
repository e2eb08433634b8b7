def add_demo_parser(sub): pass
