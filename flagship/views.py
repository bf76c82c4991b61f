"""Session login for the web pages, for the same users as the API, with the API's throttle on
repeated failures."""

from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.views.generic import TemplateView
from rest_framework.exceptions import Throttled

from audit.middleware import client_ip
from flagship.throttling import FailedLoginThrottle


class EmailAuthenticationForm(AuthenticationForm):
    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": (
            "Please enter a correct email and password. The password is case-sensitive."
        ),
    }


class LoginView(auth_views.LoginView):
    template_name = "flagship/login.html"
    form_class = EmailAuthenticationForm
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        self.throttle = FailedLoginThrottle(
            ip=client_ip(request), email=request.POST.get("username", "")
        )
        try:
            self.throttle.check()
        except Throttled as throttled:
            context = self.get_context_data(
                form=self.get_form_class()(request),
                login_refused=f"{throttled.reason}; try again in {throttled.wait} seconds.",
            )
            response = self.render_to_response(context, status=429)
            response["Retry-After"] = str(throttled.wait)
            return response
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        self.throttle.record_failure()
        return super().form_invalid(form)

    def form_valid(self, form):
        self.throttle.reset_email()
        return super().form_valid(form)


class LogoutView(auth_views.LogoutView):
    """Logging out is a POST (a link could otherwise log people out); a typed-in /logout/ gets a
    page with the button instead of a bare 405."""

    http_method_names = ["get", "post", "options"]

    def get(self, request, *args, **kwargs):
        return TemplateView.as_view(template_name="flagship/logout.html")(request)
