"""`python -m gradlint`: the `gradlint` command, without the current directory on the import path.

`python -m` puts the current directory first on `sys.path`, so a project's own `tomllib.py`,
`click/` or `libcst.py` would be imported in place of the real modules while gradlint lints
that project. It is removed before anything else is imported. (Python itself imports the
`gradlint` package before this runs: a directory named `gradlint` in the current directory
still shadows gradlint; `python -P -m gradlint` or the `gradlint` script avoid even that.)
"""

import os
import sys

if sys.path and sys.path[0] in ("", ".", os.getcwd()):
    del sys.path[0]

from gradlint.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
