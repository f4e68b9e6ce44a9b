"""Stand-in for the reference `learnware` package inside a learnware's process.

Learnware zips written for the reference import `learnware.model.BaseModel`;
this package provides that interface (and nothing heavier) so they load
unchanged without the reference installed.
"""

__version__ = "0.4.0.post1"
