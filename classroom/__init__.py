"""classroom: the course machinery that instructors and CI use; students never need to read it.

It imports ``course_lib`` and is never imported by it (a test checks the direction).

- ``checks``: one checker per exercise (``from classroom.checks import check_adamw``), used by the check cells;
- ``exercises``: the table of exercises (notebook, points, what the stub asks for, forbidden references);
- ``build``: writes ``notebooks/en`` and ``notebooks/ko`` from the bilingual sources in ``notebooks/src``;
- ``student_copies``: the notebooks without solutions, for students;
- ``grade``: runs submitted notebooks with their check cells locked and writes grades;
- ``render``: the executed copies under ``rendered/``;
- ``readme``: the README's capstone section, generated from the committed results.
"""
