"""safe_join keeps every user-given name inside its folder: absolute paths, '~', '..' and links that
lead out are refused with a message naming the input and the folder."""
import pytest


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "input"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "ok.csv").write_text("t,x\n")
    (tmp_path / "outside.csv").write_text("root:x:0:0\n")
    (root / "link_out.csv").symlink_to(tmp_path / "outside.csv")
    (root / "link_in.csv").symlink_to(root / "sub" / "ok.csv")
    return root


@pytest.mark.parametrize("name", ["/etc/passwd", "../outside.csv", "sub/../../outside.csv", "..", "~/x",
                                  "link_out.csv", "", "sub\\..\\..\\outside.csv", "C:/x"])
def test_names_leaving_the_folder_are_refused(runtime, folder, name):
    rt, _ = runtime
    with pytest.raises(rt.InputError) as err:
        rt.safe_join(str(folder), name, "recording", "the test folder")
    assert "'recording'" in str(err.value) and "the test folder" in str(err.value)
    assert "root:" not in str(err.value)


@pytest.mark.parametrize("name,expected", [("sub/ok.csv", "sub/ok.csv"), ("./sub/ok.csv", "sub/ok.csv"),
                                           ("link_in.csv", "link_in.csv")])
def test_names_inside_the_folder_resolve(runtime, folder, name, expected):
    rt, _ = runtime
    assert rt.safe_join(str(folder), name, "recording") == str(folder / expected)
