"""bench/README.md is made from the committed result files, and says what each
measured."""

from bench.readme import README, readme_render


def test_readme_is_made_from_the_result_files():
    assert README.read_text() == readme_render(), (
        "bench/README.md differs from the result files: "
        ".venv/bin/python -m bench.readme"
    )


def test_every_result_file_is_described():
    assert "Not described" not in readme_render()
