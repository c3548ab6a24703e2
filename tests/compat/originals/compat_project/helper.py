def message():
    return "made by the compat project"
