from .tenancy import organizations_of


def organizations(request):
    """The organisations of the person signed in, for the header's switcher."""
    user = getattr(request, "user", None)
    if not getattr(user, "is_authenticated", False):
        return {}
    return {"my_organizations": organizations_of(user).order_by("name")}
