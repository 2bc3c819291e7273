"""course_lib: the small shared package every notebook of the course imports.

Modules: ``paths`` (find resources), ``runtime`` (device, seeds, quick mode), ``tokenizer``,
``data``, ``models``, ``optim``, ``train``, ``plots``, ``capstone``.
"""

__version__ = "0.1.0"

# The course's public repository: the one place its address is written. The Colab setup cell of
# every notebook must use exactly this URL (tests/test_notebooks.py checks it).
REPO_URL = "https://github.com/llm-optim-course/llm-optimization-course"
